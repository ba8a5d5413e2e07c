'use strict';
// Tests of find-weir.js with node's own test runner (node --test).

const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { findWeir } = require('../find-weir');

// Every directory made here is removed when the tests end.
const made = [];
test.after(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDirWith(name, mode) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-flow-'));
  made.push(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, '#!/bin/sh\n');
  fs.chmodSync(file, mode);
  return { dir, file };
}

test('a bare name is found on PATH', { skip: process.platform === 'win32' }, () => {
  const { dir, file } = tempDirWith('weir', 0o755);
  assert.strictEqual(findWeir('weir', { PATH: ['/nonexistent', dir].join(path.delimiter) }), file);
});

test('a missing executable gives null', () => {
  assert.strictEqual(findWeir('weir', { PATH: '/nonexistent' }), null);
  assert.strictEqual(findWeir('', { PATH: '/nonexistent' }), null);
});

test('a file that is not executable is skipped', { skip: process.platform === 'win32' }, () => {
  const { dir } = tempDirWith('weir', 0o644);
  assert.strictEqual(findWeir('weir', { PATH: dir }), null);
});

test('a path is used as it is', { skip: process.platform === 'win32' }, () => {
  const { file } = tempDirWith('my-weir', 0o755);
  assert.strictEqual(findWeir(file, { PATH: '' }), file);
  assert.strictEqual(findWeir(file + '-missing', { PATH: '' }), null);
});
