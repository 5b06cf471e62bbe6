import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixture } from '../support/fixtures';
import { withTempDir } from '../support/kernel-mounts';
import { runCli } from './run-cli';

test("inspect flags the relative paths of mkfs.erofs's own descriptors (merged.mkfs.vmdk, merged.vmdk)", () => {
  const descriptors = ['basic/merged.vmdk', 'taridx/merged.mkfs.vmdk', 'mixedbs/merged.mkfs.vmdk', 'mixedbs-bottom512/merged.mkfs.vmdk', 'single/merged.vmdk'];
  for (const d of descriptors) {
    const r = runCli(['inspect', fixture(...d.split('/'))]);
    assert.equal(r.status, 1, `${d}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /finding relative-path: line 8: path "[^"]+" is relative/, d);
  }
});

test('inspect: mkfs descriptors with wrong slots or missing files get the specific findings', () => {
  const tags = runCli(['inspect', fixture('taridx', 'merged.mkfs.vmdk')]);
  assert.match(tags.stdout, /finding extent-file-missing: line 9: .*5cc5c19d8f0251b38a64597ab7973617": ENOENT/);
  const mixed = runCli(['inspect', fixture('mixedbs', 'merged.mkfs.vmdk')]);
  assert.match(mixed.stdout, /finding layout-mismatch: line 9: extent does not cover device 1's 48 sectors/);
  const wrong = runCli(['inspect', fixture('wrong-uniaddr', 'merged.vmdk')]);
  assert.match(wrong.stdout, /finding layout-mismatch: line 10: device 2 data starts at sector 728, its slot says uniaddr 92 = sector 736/);
  // variant a (tar data through extent offsets) follows its table: only relative paths and offsets are flagged
  const taridx = runCli(['inspect', fixture('taridx', 'merged.vmdk')]);
  assert.doesNotMatch(taridx.stdout, /layout-/);
  assert.match(taridx.stdout, /finding extent-nonzero-offset: line 9: offset 10/);
  const bottom = runCli(['inspect', fixture('mixedbs-bottom512', 'merged.mkfs.vmdk')]);
  assert.match(bottom.stdout, /finding extent-file-short: line 9/);
  assert.match(bottom.stdout, /finding layer-block-size-smaller/);
});

test('inspect an EROFS image: superblock, features, device table, checksum; exit 0 when clean', () => {
  const r = runCli(['inspect', fixture('basic', 'fsmeta.erofs')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /block size 4096 \(bits 12\)/);
  assert.match(r.stdout, /checksum 0x64d4e53c: ok/);
  assert.match(r.stdout, /feature_compat 0x00000007 \[SB_CHKSUM MTIME XATTR_FILTER\]/);
  assert.match(r.stdout, /feature_incompat 0x00000008 \[DEVICE_TABLE\]/);
  assert.match(r.stdout, /slot 1 \(device 2\): tag "a5b9305af38e55839e1d1fcf5146e492" blocks 4 uniaddr 91/);
  assert.match(r.stdout, /no findings/);
});

test('inspect EROFS findings: bad checksum and 48BIT exit 1; --json is machine readable', () => {
  const bad = runCli(['inspect', fixture('bad-inputs', 'bad-checksum.erofs'), fixture('bad-inputs', '48bit.erofs')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /checksum 0x64d4e53c: mismatch \(computed 0x1bc52bad\)/);
  assert.match(bad.stdout, /finding unsupported-feature: .*48bit\.erofs: incompat feature 48BIT/);
  const json = runCli(['inspect', '--json', fixture('basic', 'fsmeta.erofs'), fixture('basic', 'merged.vmdk')]);
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed[0].kind, 'erofs');
  assert.equal(parsed[0].deviceTable.length, 4);
  assert.equal(parsed[1].kind, 'vmdk');
  assert.equal(parsed[1].extents.length, 5);
  assert.ok(parsed[1].findings.every((f: { code: string }) => f.code === 'relative-path'));
});

test('inspect: unreadable or unknown input exits 2 with one line per file', async () => {
  await withTempDir((dir) => {
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, Buffer.alloc(5000, 1));
    const r = runCli(['inspect', path.join(dir, 'missing.erofs'), junk, fixture('bad-inputs', 'truncated-sb.erofs')]);
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0], /missing\.erofs": ENOENT/);
    assert.match(lines[1], /junk\.bin": not an EROFS image/);
    assert.match(lines[2], /truncated-sb\.erofs": 1100 bytes, too short for an EROFS superblock/);
  });
});
