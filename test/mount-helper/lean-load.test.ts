/**
 * The helper runs on every container start: loading its main module must not
 * pull the daemon's heavy dependencies (gRPC, SQLite, zod, pino, prom-client),
 * directly or through a shared module.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from '../support/fixtures';

const HEAVY = ['@grpc/grpc-js', 'better-sqlite3', 'zod', 'pino', 'prom-client', '@bufbuild/protobuf', 'protobufjs'];

function loadedBy(script: string): string[] {
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: repoRoot });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('requiring dist/src/mount-helper/main.js loads no npm package and none of the daemon modules', () => {
  const main = path.join(repoRoot, 'dist', 'src', 'mount-helper', 'main.js');
  const loaded = loadedBy(`require(${JSON.stringify(main)}); process.stdout.write(JSON.stringify(Object.keys(require.cache)))`);
  for (const pkg of HEAVY) {
    assert.equal(loaded.filter((f) => f.includes(`/node_modules/${pkg}/`)).length, 0, `${pkg} must not be loaded`);
  }
  assert.deepEqual(loaded.filter((f) => f.includes('/node_modules/')), [], 'no npm package at all at load time');
  // The helper's own modules plus the contract's import-free name list, nothing of the daemon.
  const shared = path.join(repoRoot, 'dist', 'src', 'mount', 'contract-v2.js');
  const outside = loaded.filter((f) => !f.includes(`${path.sep}dist${path.sep}src${path.sep}mount-helper${path.sep}`) && f !== shared);
  assert.deepEqual(outside, [], 'only the helper\'s own modules');
});

test('a full refused run with a config file loads smol-toml only (lazily), still nothing heavy', () => {
  const main = path.join(repoRoot, 'dist', 'src', 'mount-helper', 'main.js');
  const script = `
    const fs = require('node:fs'), os = require('node:os'), path = require('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evm-lean-'));
    fs.writeFileSync(path.join(dir, 'c.toml'), 'root = "' + dir + '"\\n');
    process.stderr.write = () => true;
    require(${JSON.stringify(main)}).main(['/nope.vmdk', dir, '-o', 'X-erofs-vmdk.contract=2'], { EROFS_VMDK_CONFIG: path.join(dir, 'c.toml') });
    fs.rmSync(dir, { recursive: true });
    process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  const loaded = loadedBy(script);
  const packages = [...new Set(loaded.filter((f) => f.includes('/node_modules/')).map((f) => f.split('/node_modules/')[1].split('/')[0]))];
  assert.deepEqual(packages, ['smol-toml']);
});
