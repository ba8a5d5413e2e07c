#!/usr/bin/env bash
# Tests the tree-sitter grammar: generates the parser from grammar.js, runs
# the corpus and highlight tests (`tree-sitter test`), then parses every
# `.flow` file under examples/ and tests/eval/ of the repository, and the
# fixtures here, failing on any ERROR or MISSING node.
# Needs the tree-sitter CLI (cargo install tree-sitter-cli --locked) and a C compiler.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

# Keep the CLI's configuration and compiled parsers out of the user's home.
TREE_SITTER_DIR="$(mktemp -d)"
export TREE_SITTER_DIR
export TREE_SITTER_LIBDIR="$TREE_SITTER_DIR/lib"
trap 'rm -rf "$TREE_SITTER_DIR"' EXIT
tree-sitter init-config >/dev/null

tree-sitter generate
tree-sitter test

files=()
for dir in "$root/examples" "$root/tests/eval" "$here/test/fixtures"; do
  if [[ -d $dir ]]; then
    while IFS= read -r -d '' file; do
      files+=("$file")
    done < <(find "$dir" -name '*.flow' -print0 | sort -z)
  fi
done
echo "parsing ${#files[@]} .flow files"
# Exits non-zero and names the file when a tree has an ERROR or MISSING node.
tree-sitter parse -p . --quiet "${files[@]}"
