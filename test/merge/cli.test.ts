/**
 * `erofs-vmdk merge --out FSMETA L1 … Ln`: writes what mergeLayers returns,
 * atomically; a refusal exits 2 with one line and leaves nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { cliPath, fixture } from '../support/fixtures';
import { withTempDir } from '../support/kernel-mounts';
import { mergeLayers } from '../../src/merge';

const basic = ['layer1', 'layer2', 'layer3', 'layer4'].map((l) => fixture('basic', `${l}.erofs`));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, 'merge', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('merge writes the fsmeta (bottom layer first) and can print the flat layout', async () => {
  await withTempDir((dir) => {
    const out = `${dir}/fsmeta.erofs`;
    const r = cli(['--out', out, '--json', ...basic]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.readFileSync(out).equals(mergeLayers(basic.map((p) => ({ path: p })))));
    const layout = JSON.parse(r.stdout);
    assert.equal(layout.blockSize, 4096);
    assert.deepEqual(
      layout.devices.map((d: { uniaddr: number }) => d.uniaddr),
      [2, 91, 95, 98],
    );
    // running again replaces the file (atomic rename), leaving no temp files
    assert.equal(cli(['--out', out, ...basic]).status, 0);
    assert.deepEqual(fs.readdirSync(dir), ['fsmeta.erofs']);
  });
});

test('a refused merge exits 2 with one line and writes nothing', async () => {
  await withTempDir((dir) => {
    const out = `${dir}/fsmeta.erofs`;
    const layers = ['layer1', 'layer2', 'layer3'].map((l) => fixture('mixedbs', `${l}.erofs`));
    const r = cli(['--out', out, ...layers]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /mixed-block-sizes/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

test('bad usage exits 2 with one line', () => {
  for (const args of [[], ['--out'], basic, ['--out', '/tmp/x.erofs', '--tag', 'a', ...basic], ['--bogus', '--out', '/tmp/x', ...basic]]) {
    const r = cli(args);
    assert.equal(r.status, 2, `args ${args.join(' ')}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
