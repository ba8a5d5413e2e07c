#!/usr/bin/env bash
# Tests the VS Code extension: the TextMate grammar over the annotated
# samples in tests/*.flow (vscode-tmgrammar-test), the JSON manifests, and
# the executable lookup (node --test). Installs the pinned dev dependencies
# with `npm ci` from package-lock.json when they are missing or stale.
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x node_modules/.bin/vscode-tmgrammar-test || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

for json in package.json language-configuration.json syntaxes/flow.tmLanguage.json; do
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$json"
done
node --check extension.js
node --test unit/
node_modules/.bin/vscode-tmgrammar-test -g syntaxes/flow.tmLanguage.json "tests/*.flow"
