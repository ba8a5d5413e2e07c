'use strict';
// The Weir Flow extension: the TextMate grammar and language configuration
// are declared in package.json; this file only starts the language server
// (`weir lsp`, on stdio) when a `weir` executable can be found. Without one,
// the extension still highlights and says once why it does nothing more.

const vscode = require('vscode');
const { findWeir } = require('./find-weir');

/** The running client, if any; stopped on deactivate or restart. */
let client = null;

/** Starts `weir lsp` if the `weir.path` setting resolves to an executable. */
async function startClient(output) {
  const setting = vscode.workspace.getConfiguration('weir').get('path', 'weir');
  const command = findWeir(setting);
  if (!command) {
    output.appendLine(`weir executable '${setting}' not found (setting weir.path); highlighting only, no language server.`);
    return;
  }
  // Required lazily so that a missing dependency cannot break highlighting.
  const { LanguageClient, TransportKind } = require('vscode-languageclient/node');
  const serverOptions = { command, args: ['lsp'], transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'flow' },
      { scheme: 'untitled', language: 'flow' },
    ],
    outputChannel: output,
    synchronize: {
      // List files and imported rule files change diagnostics too.
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.{flow,txt}'),
    },
  };
  client = new LanguageClient('weir', 'Weir Flow language server', serverOptions, clientOptions);
  output.appendLine(`starting ${command} lsp`);
  await client.start();
}

/** Stops the running client, if any. */
async function stopClient() {
  if (client) {
    const running = client;
    client = null;
    await running.stop();
  }
}

async function activate(context) {
  const output = vscode.window.createOutputChannel('Weir');
  context.subscriptions.push(output);
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (event) => {
    if (event.affectsConfiguration('weir.path')) {
      await stopClient();
      await startClient(output).catch((error) => output.appendLine(`weir lsp failed: ${error}`));
    }
  }));
  await startClient(output).catch((error) => output.appendLine(`weir lsp failed: ${error}`));
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
