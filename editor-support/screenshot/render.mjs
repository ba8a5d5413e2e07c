// Renders a .flow file to a standalone HTML page with shiki, using the VS
// Code extension's own TextMate grammar, so the README picture shows exactly
// what the extension highlights.
//
// Usage: node render.mjs INPUT.flow OUTPUT.html

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHighlighter } from 'shiki';

const here = dirname(fileURLToPath(import.meta.url));
const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node render.mjs INPUT.flow OUTPUT.html');
  process.exit(2);
}

const grammar = JSON.parse(readFileSync(join(here, '../vscode/syntaxes/flow.tmLanguage.json'), 'utf8'));
const theme = JSON.parse(readFileSync(join(here, 'theme.json'), 'utf8'));
const highlighter = await createHighlighter({
  themes: [theme],
  langs: [{ ...grammar, name: 'flow' }],
});
// A README picture shows the rules and one test: the file is cut before its
// second top-level `test` block.
const lines = readFileSync(input, 'utf8').split('\n');
const tests = lines.map((line, index) => (line.startsWith('test ') ? index : -1)).filter((index) => index >= 0);
const kept = tests.length > 1 ? lines.slice(0, tests[1]) : lines;
const code = kept.join('\n').replace(/\n+$/, '');
writeFileSync(output.replace(/\.html$/, '.lines'), `${code.split('\n').length}\n`);
const body = highlighter.codeToHtml(code, { lang: 'flow', theme: theme.name });
const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>${input}</title>
<style>
  html, body { margin: 0; background: ${theme.colors['editor.background']}; }
  pre.shiki { margin: 0; padding: 20px 24px; font: 14px/1.45 "DejaVu Sans Mono", monospace; }
</style></head>
<body>${body}</body></html>
`;
writeFileSync(output, page);
console.log(`wrote ${output}`);
