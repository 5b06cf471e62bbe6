#!/usr/bin/env node
'use strict';
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the
// "prepare" script, or by `npm run build`).
const path = require('node:path');
const fs = require('node:fs');
const entry = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
if (!fs.existsSync(entry)) {
  process.stderr.write(`erofs-vmdk: ${entry} is missing; run "npm run build" first\n`);
  process.exit(2);
}
require(entry).main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`erofs-vmdk: ${err && err.stack ? err.stack : err}\n`); process.exitCode = 2; },
);
