/**
 * `--out` naming one of the inputs (same path, a symlink to it, or the same
 * file through a symlinked directory) must be refused: the atomic write
 * renames the output over that path, which destroyed the layer blob.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixture } from '../support/fixtures';
import { runCliBounded } from './bounded-child';

function withCopies(fn: (dir: string, l1: string, l2: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'review-clobber-'));
  try {
    const l1 = path.join(dir, 'l1.erofs');
    const l2 = path.join(dir, 'l2.erofs');
    fs.copyFileSync(fixture('basic', 'layer1.erofs'), l1);
    fs.copyFileSync(fixture('basic', 'layer2.erofs'), l2);
    fn(dir, l1, l2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function assertIntact(file: string, original: string): void {
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(original)), `${file} was overwritten`);
}

test('vmdk --out equal to the --layer is refused and the layer is untouched', () => {
  withCopies((_dir, l1) => {
    const r = runCliBounded(['vmdk', '--layer', l1, '--out', l1]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^erofs-vmdk vmdk: --out .*l1\.erofs: is the input .*would destroy it\n$/);
    assertIntact(l1, fixture('basic', 'layer1.erofs'));
  });
});

test('vmdk --out that is a symlink to a merged --layer is refused', () => {
  withCopies((dir, l1, l2) => {
    const link = path.join(dir, 'link.vmdk');
    fs.symlinkSync(l2, link);
    const r = runCliBounded(['vmdk', '--layer', l1, '--layer', l2, '--out', link]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assertIntact(l2, fixture('basic', 'layer2.erofs'));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['l1.erofs', 'l2.erofs', 'link.vmdk'], 'no merged fsmeta left behind');
  });
});

test('vmdk --out equal to the --fsmeta is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'review-clobber-'));
  try {
    const fsmeta = path.join(dir, 'fsmeta.erofs');
    fs.copyFileSync(fixture('basic', 'fsmeta.erofs'), fsmeta);
    const args = ['vmdk', '--fsmeta', fsmeta];
    for (const n of [1, 2, 3, 4]) args.push('--device', fixture('basic', `layer${n}.erofs`));
    const r = runCliBounded([...args, '--out', fsmeta]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assertIntact(fsmeta, fixture('basic', 'fsmeta.erofs'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('merge --out naming a layer through a symlinked directory is refused', () => {
  withCopies((dir, l1, l2) => {
    const linkDir = `${dir}-link`;
    fs.symlinkSync(dir, linkDir);
    try {
      const r = runCliBounded(['merge', '--out', path.join(linkDir, 'l1.erofs'), l1, l2]);
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /is also a layer/);
      assertIntact(l1, fixture('basic', 'layer1.erofs'));
    } finally {
      fs.rmSync(linkDir, { force: true });
    }
  });
});

test('an --out that exists but is not an input is still replaced (control)', () => {
  withCopies((dir, l1) => {
    const out = path.join(dir, 'old.vmdk');
    fs.writeFileSync(out, 'stale');
    const r = runCliBounded(['vmdk', '--layer', l1, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(fs.readFileSync(out, 'utf8'), /^# Disk DescriptorFile/);
  });
});

test('merge --out naming a device node or a directory is refused and leaves it as it was', () => {
  withCopies((dir, l1) => {
    // A private stand-in for /dev/null (char 1:3): as root the rename used to replace the node itself.
    const nullDev = path.join(dir, 'null');
    execFileSync('mknod', [nullDev, 'c', '1', '3']);
    const r = runCliBounded(['merge', '--out', nullDev, l1]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /exists and is not a regular file/);
    assert.equal(fs.statSync(nullDev).isCharacterDevice(), true);

    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    const d = runCliBounded(['merge', '--out', sub, l1]);
    assert.equal(d.status, 2, d.stdout + d.stderr);
    assert.match(d.stderr, /exists and is not a regular file/);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.')), [], 'no temp file left behind');
  });
});
