#!/usr/bin/env bash
# Tests the Vim syntax file: highlights test/sample.flow in a headless Vim
# and compares each line's tokens and syntax groups with
# test/sample.expected. UPDATE_EXPECT=1 rewrites the expected file (review
# the diff before committing it).
set -euo pipefail
cd "$(dirname "$0")"
actual="$(mktemp)"
trap 'rm -f "$actual"' EXIT
vim -N -u NONE -i NONE -es -c "let g:flow_dump_output='$actual'" -S test/dump.vim test/sample.flow </dev/null
if [[ ${UPDATE_EXPECT:-} == 1 ]]; then
  cp "$actual" test/sample.expected
  echo "blessed test/sample.expected"
  exit 0
fi
if ! diff -u test/sample.expected "$actual"; then
  echo "Vim highlighting differs from test/sample.expected (UPDATE_EXPECT=1 $0 to bless)" >&2
  exit 1
fi
echo "vim syntax: test/sample.flow highlighted as expected"
