'use strict';
// Finds the `weir` executable the language client starts. Kept apart from
// extension.js (which needs the `vscode` module) so that it can be tested
// with plain node.

const fs = require('fs');
const path = require('path');

/** Whether `file` exists, is a regular file and may be executed. */
function isExecutable(file) {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    if (process.platform !== 'win32') {
      fs.accessSync(file, fs.constants.X_OK);
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves the `weir.path` setting to an executable file, or returns null.
 * A name with a path separator is taken as a path; a bare name is looked up
 * in each directory of PATH (with PATHEXT's extensions on Windows).
 */
function findWeir(setting, env = process.env) {
  const command = (setting || 'weir').trim();
  if (command === '') {
    return null;
  }
  const extensions = process.platform === 'win32'
    ? ['', ...(env.PATHEXT || '.EXE;.CMD;.BAT').split(';')]
    : [''];
  if (command.includes('/') || command.includes(path.sep)) {
    return extensions.map((ext) => command + ext).find(isExecutable) || null;
  }
  for (const dir of (env.PATH || '').split(path.delimiter)) {
    if (dir === '') {
      continue;
    }
    for (const ext of extensions) {
      const candidate = path.join(dir, command + ext);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return null;
}

module.exports = { findWeir };
