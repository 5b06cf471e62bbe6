/**
 * erofs-vmdk-mount with real kernel mounts: views, directory-mode and
 * block-mode containers, a one-layer descriptor, the mount.fuse3 dispatch, and
 * the rollback of a step that fails half way. After every unmount of TARGET
 * nothing may be left: no mount under the temp root, no loop device on its files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixture, repoRoot } from '../support/fixtures';
import { listTree, run } from '../support/kernel-mounts';
import {
  CONTRACT,
  VIEW_OPTIONS,
  makeTestRoot,
  mountsUnder,
  privateDirsLeft,
  runHelper,
  settledLoopsUnder,
  type TestRoot,
} from './helpers';

let t: TestRoot;
before(() => {
  t = makeTestRoot();
});
after(() => t.cleanup());

const expected = (name: string) => fs.readFileSync(fixture(name, 'expected.tsv'), 'utf8');

async function assertNothingLeft(): Promise<void> {
  assert.deepEqual(mountsUnder(t.root), [], 'nothing mounted under the temp root');
  assert.deepEqual(await settledLoopsUnder(t.root), [], 'no loop device on a file of the temp root');
  assert.deepEqual(privateDirsLeft(t.root), [], 'no private mount point left in <root>/host-mounts');
}

function mountType(target: string): string | undefined {
  const line = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === target)
    .pop();
  return line?.split(' - ')[1].split(' ')[0];
}

function ok(args: string[]): void {
  const r = runHelper(t.env, args);
  assert.equal(r.stderr, '', 'no output on success');
  assert.equal(r.status, 0);
}

test('view of the 4-layer fixture: the merged tree on TARGET, read-only; one umount releases every loop device', async () => {
  const target = t.dir('view');
  ok([t.basic.vmdk, target, '-o', `${VIEW_OPTIONS},dev,suid`]);
  try {
    assert.equal(mountType(target), 'erofs');
    assert.equal(listTree(target), expected('basic'));
    assert.equal((await settledLoopsUnder(t.root, 0)).length, 5, 'fsmeta + 4 layer loops while mounted');
    assert.throws(() => fs.writeFileSync(path.join(target, 'x'), 'x'), /EROFS|read-only/);
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();
});

test('one-layer descriptor: the blob alone is mounted', async () => {
  const target = t.dir('single');
  ok([t.single.vmdk, target, '-o', VIEW_OPTIONS, '-o', 'dev,suid']);
  try {
    assert.equal(listTree(target), expected('single'));
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();
});

test('directory-mode container: overlay on TARGET, writes land in upperdir, nothing else stays mounted', async () => {
  const target = t.dir('rootfs');
  const upper = t.dir('upper');
  const work = t.dir('work');
  ok([t.basic.vmdk, target, '-o', [...CONTRACT, `upperdir=${upper}`, `workdir=${work}`, 'nodev', 'nosuid'].join(',')]);
  try {
    assert.equal(mountType(target), 'overlay');
    // Only TARGET: the private EROFS mount was lazily detached.
    assert.deepEqual(mountsUnder(t.root), [target]);
    assert.deepEqual(privateDirsLeft(t.root), []);
    const opts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target)!;
    assert.match(opts.split(' ')[5], /nosuid,nodev/);
    assert.ok(fs.existsSync(path.join(target, 'opt', 'tools', 'run.sh')), 'the top layer is visible');
    fs.writeFileSync(path.join(target, 'etc', 'hostname'), 'container\n');
    assert.equal(fs.readFileSync(path.join(upper, 'etc', 'hostname'), 'utf8'), 'container\n');
    assert.ok(fs.existsSync(path.join(target, 'usr', 'bin', 'hello')), 'lower layers visible through the overlay');
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();
});

test('block-mode container: the image is created and formatted, writes land in it, a second mount is refused while it is in use', async () => {
  const target = t.dir('rootfs');
  const image = path.join(t.root, 'rw.img');
  const opts = [...CONTRACT, `X-erofs-vmdk.upper-image=${image}`, `X-erofs-vmdk.upper-image-size=${64 << 20}`, 'X-erofs-vmdk.upper-image-fs=ext4'];
  ok([t.basic.vmdk, target, '-o', opts.join(','), '-o', 'dev,suid']);
  try {
    assert.equal(mountType(target), 'overlay');
    assert.equal(fs.statSync(image).size, 64 << 20);
    assert.deepEqual(mountsUnder(t.root), [target]);
    fs.writeFileSync(path.join(target, 'written-in-block-mode'), 'hello\n');

    const other = t.dir('second');
    const again = runHelper(t.env, [t.basic.vmdk, other, '-o', opts.join(',')]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /^erofs-vmdk-mount: upper image ".*rw\.img" is already attached to \/dev\/loop\d+ \(in use by another mount\)\n$/);
    assert.deepEqual(mountsUnder(t.root), [target], 'the refused mount left nothing');
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();
  const listing = run('debugfs', ['-R', 'ls -l /upper', image]);
  assert.match(listing, /written-in-block-mode/);

  // Mounted again: the existing image is reused, not reformatted.
  ok([t.basic.vmdk, target, '-o', opts.join(',')]);
  try {
    assert.equal(fs.readFileSync(path.join(target, 'written-in-block-mode'), 'utf8'), 'hello\n');
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();
});

test('ro on a container (containerd 1.7 read-only temp mounts append it): the overlay is read-only', async () => {
  const target = t.dir('rootfs');
  ok([t.basic.vmdk, target, '-o', [...CONTRACT, `upperdir=${t.dir('upper')}`, `workdir=${t.dir('work')}`, 'ro'].join(',')]);
  try {
    assert.equal(mountType(target), 'overlay');
    assert.throws(() => fs.writeFileSync(path.join(target, 'x'), 'x'), /EROFS|read-only/);
    assert.ok(fs.existsSync(path.join(target, 'usr', 'bin', 'hello')));
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();
});

test('through the real dispatch: mount.fuse3 SRC TARGET -o … -t erofs-vmdk-mount (one -o per option, like containerd)', async () => {
  const target = t.dir('fuse3');
  const upper = t.dir('upper');
  const work = t.dir('work');
  const args = [t.basic.vmdk, target];
  for (const o of [...CONTRACT, `upperdir=${upper}`, `workdir=${work}`]) args.push('-o', o);
  args.push('-t', 'erofs-vmdk-mount');
  const env = { ...t.env, PATH: `${path.join(repoRoot, 'bin')}:${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const r = spawnSync('mount.fuse3', args, { encoding: 'utf8', env });
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  try {
    assert.equal(mountType(target), 'overlay');
    fs.writeFileSync(path.join(target, 'via-fuse3'), '1');
    assert.ok(fs.existsSync(path.join(upper, 'via-fuse3')));
  } finally {
    run('umount', [target]);
  }
  await assertNothingLeft();

  // A refusal comes back through mount.fuse3 as its exit status and our one line.
  const bad = spawnSync('mount.fuse3', [t.basic.vmdk, target, '-o', 'ro', '-t', 'erofs-vmdk-mount'], { encoding: 'utf8', env });
  assert.notEqual(bad.status, 0);
  assert.equal(bad.stderr, 'erofs-vmdk-mount: missing option X-erofs-vmdk.contract=2\n');
});

test('a step failing half way is undone: overlay refused (upperdir = workdir) leaves no mount, loop or temp dir', async () => {
  const target = t.dir('rootfs');
  const same = t.dir('same');
  const r = runHelper(t.env, [t.basic.vmdk, target, '-o', [...CONTRACT, `upperdir=${same}`, `workdir=${same}`].join(',')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^erofs-vmdk-mount: mounting overlay on ".*": mount -t overlay overlay -o lowerdir=.*\n$/);
  assert.equal(r.stderr.split('\n').length, 2, 'exactly one line');
  await assertNothingLeft();
});

test('block mode failing half way is undone: an existing non-ext4 image is not mounted, the EROFS lower is released', async () => {
  const target = t.dir('rootfs');
  const image = path.join(t.root, 'garbage.img');
  fs.writeFileSync(image, Buffer.alloc(2 << 20, 0x5a));
  const opts = [...CONTRACT, `X-erofs-vmdk.upper-image=${image}`, `X-erofs-vmdk.upper-image-size=${2 << 20}`, 'X-erofs-vmdk.upper-image-fs=ext4'];
  const r = runHelper(t.env, [t.basic.vmdk, target, '-o', opts.join(',')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^erofs-vmdk-mount: mounting upper image ".*garbage\.img": mount -t ext4 -o loop,rw .*\n$/);
  assert.equal(fs.readFileSync(image)[0], 0x5a, 'an existing image is never reformatted');
  await assertNothingLeft();
});

test('block mode: an image created by this run is removed again when the overlay step fails', async () => {
  // A `mount` first on PATH that fails only for overlayfs, so the failure comes after mkfs and the ext4 mount.
  const fakeBin = t.dir('fake-bin');
  fs.writeFileSync(
    path.join(fakeBin, 'mount'),
    '#!/bin/sh\nfor a in "$@"; do [ "$a" = overlay ] && { echo "mount: injected overlay failure" >&2; exit 32; }; done\nexec /usr/bin/mount "$@"\n',
    { mode: 0o755 },
  );
  const env = { ...t.env, PATH: `${fakeBin}:${process.env.PATH ?? ''}` };
  const target = t.dir('rootfs');
  const image = path.join(t.root, 'new.img');
  const opts = [...CONTRACT, `X-erofs-vmdk.upper-image=${image}`, `X-erofs-vmdk.upper-image-size=${8 << 20}`, 'X-erofs-vmdk.upper-image-fs=ext4'];
  const r = spawnSync(path.join(repoRoot, 'bin', 'erofs-vmdk-mount'), [t.basic.vmdk, target, '-o', opts.join(',')], { encoding: 'utf8', env });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^erofs-vmdk-mount: mounting overlay on ".*": mount -t overlay .*: mount: injected overlay failure\n$/);
  assert.equal(fs.existsSync(image), false, 'the image this run created is gone');
  await assertNothingLeft();

  // An existing empty image is formatted, and emptied again on failure.
  fs.writeFileSync(image, '');
  const r2 = spawnSync(path.join(repoRoot, 'bin', 'erofs-vmdk-mount'), [t.basic.vmdk, target, '-o', opts.join(',')], { encoding: 'utf8', env });
  assert.equal(r2.status, 1);
  assert.equal(fs.statSync(image).size, 0);
  await assertNothingLeft();
});
