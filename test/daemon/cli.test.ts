/** The `serve`, `config` and `version` command lines. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cliPath, repoRoot } from '../support/fixtures';

function cli(...args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 20_000 });
}

test('version prints the package version and the API served', () => {
  const r = cli('version');
  assert.equal(r.status, 0);
  const { version } = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.match(r.stdout, new RegExp(`^erofs-vmdk ${version.replace(/\./g, '\\.')}\\n`));
  assert.match(r.stdout, /containerd\.services\.snapshots\.v1\.Snapshots/);
});

test('serve --help documents every flag', () => {
  const r = cli('serve', '--help');
  assert.equal(r.status, 0);
  for (const flag of ['--config', '--address', '--root', '--log-level', '--metrics-address', '--backend', '--remote-address', '--remote-snapshotter']) {
    assert.ok(r.stdout.includes(flag), `${flag} missing from serve --help`);
  }
});

test('serve refuses an unknown flag, a stray argument and a missing explicit config file (exit 2, message)', () => {
  const unknown = cli('serve', '--adress', '/tmp/x.sock');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /--adress/);
  const stray = cli('serve', 'now');
  assert.equal(stray.status, 2);
  assert.match(stray.stderr, /unexpected argument "now"/);
  const missing = cli('serve', '--config', '/nonexistent/erofs-vmdk.toml');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /config file \/nonexistent\/erofs-vmdk\.toml: cannot read it/);
});

test('config without a sub-command is an error listing the sub-commands', () => {
  const r = cli('config');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /config default/);
  assert.match(r.stderr, /config dump/);
});
