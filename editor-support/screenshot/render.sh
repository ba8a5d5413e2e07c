#!/usr/bin/env bash
# Renders the README picture docs/images/editing.png: a .flow file highlighted
# by the VS Code extension's own TextMate grammar (shiki), photographed by
# headless Chromium.
#
# Usage: editor-support/screenshot/render.sh [INPUT.flow] [OUTPUT.png]
# Defaults: examples/quickstart/support.flow (or docs/language.md's "A first file" example,
# kept in editor-support/tree-sitter-flow/test/fixtures) -> docs/images/editing.png.
# Needs node/npm (shiki is installed with `npm ci` from package-lock.json) and
# Debian's chromium (apt-get install chromium fonts-dejavu-core).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

input="${1:-$root/examples/quickstart/support.flow}"
if [[ $# -eq 0 && ! -f $input ]]; then
  input="$root/editor-support/tree-sitter-flow/test/fixtures/language-example.flow"
fi
output="${2:-$root/docs/images/editing.png}"

if [[ ! -d $here/node_modules/shiki || $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
node "$here/render.mjs" "$input" "$work/page.html"

# The page is as tall as the code shown: 14px * 1.45 per line plus padding.
lines=$(cat "$work/page.lines")
height=$(( (lines + 1) * 203 / 10 + 48 ))
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$work/profile" \
  --window-size=900,"$height" --screenshot="$work/shot.png" "file://$work/page.html" 2>/dev/null
mkdir -p "$(dirname "$output")"
cp "$work/shot.png" "$output"
echo "wrote $output ($lines lines of $input)"
