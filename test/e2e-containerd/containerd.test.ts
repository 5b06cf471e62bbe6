/**
 * Real containerd end to end (Debian's containerd 1.6 + runc here): a private
 * containerd whose proxy_plugins point `erofs-vmdk` and `erofs-vmdk-host` at
 * an `erofs-vmdk serve` (embedded backend, legacy mount style) started by the
 * test; a three-layer OCI image built locally from busybox-static, the top
 * layer deleting a file of the layer below (a whiteout).
 *
 * 1. runc: import with the pass-through profile, run a container, check its
 *    output (files of each layer, the whited-out file absent); `ctr image rm`
 *    plus containerd's garbage collection removes the backend snapshots.
 * 2. rewrite profile: import a single-layer image with `erofs-vmdk`, prepare a
 *    container snapshot, and check `ctr snapshots mounts` shows ONE contract v2
 *    entry (`fuse.erofs-vmdk-mount`) whose descriptor, through qemu-img convert
 *    and a flat loop mount, lists that layer's tree; image removal + GC removes
 *    the descriptor.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseCtrMounts, startDaemonWithContainerd, type TestContainerd } from '../support/containerd';
import { assertContractV2, embeddedDirectoryLayer } from '../support/contract';
import type { TestDaemon } from '../support/daemon';
import { listFlatDescriptor, listTree } from '../support/kernel-mounts';
import { buildOciArchive, busyboxLayer, file, tar, whiteout } from '../support/oci-image';

const HOST = 'erofs-vmdk-host';
const REWRITE = 'erofs-vmdk';

/** Listing without the root line and the mtime column (mkfs.erofs does not keep every mtime). */
function comparable(listing: string): string {
  return listing
    .split('\n')
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('.\t'))
    .map((l) => l.split('\t').slice(0, -1).join('\t'))
    .join('\n');
}

function snapshotDirs(d: TestDaemon): string[] {
  const dir = path.join(d.root, 'embedded', 'snapshots');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

describe('real containerd end to end (embedded backend, legacy mount style)', () => {
  let d: TestDaemon;
  let c: TestContainerd;
  let stop: (() => Promise<void>) | undefined;

  before(async () => {
    ({ daemon: d, containerd: c, close: stop } = await startDaemonWithContainerd());
  });

  after(async () => {
    await stop?.();
  });

  test('runc runs a container from the erofs-vmdk-host snapshotter; image removal garbage-collects the snapshots', async () => {
    const img = buildOciArchive(path.join(c.dir, 'three-layers.tar'), {
      name: 'docker.io/library/erofs-vmdk-e2e:three',
      layers: [
        busyboxLayer(),
        [file('etc/message', 'hello from layer 2\n'), file('etc/doomed', 'deleted by layer 3\n')],
        [whiteout('etc/doomed'), file('etc/top', 'from the top layer\n')],
      ],
    });
    await c.ctr(['images', 'import', '--snapshotter', HOST, img.archive]);
    const listed = (await c.ctr(['snapshots', '--snapshotter', HOST, 'ls'])).stdout;
    for (const chain of img.chainIds) assert.match(listed, new RegExp(`${chain.slice('sha256:'.length)}.*Committed`), `layer ${chain} unpacked`);

    const { stdout } = await c.ctr([
      'run', '--rm', '--snapshotter', HOST, img.name, 'e2e-runc',
      '/bin/sh', '-c', 'cat /etc/issue /etc/message /etc/top; test -e /etc/doomed && echo doomed-present || echo doomed-absent',
    ]);
    assert.equal(stdout, 'erofs-vmdk test image (busybox)\nhello from layer 2\nfrom the top layer\ndoomed-absent\n');

    const before = await d.client.list({ snapshotter: HOST }, { namespace: null });
    assert.equal(before.filter((i) => i.kind === 3).length, 3, 'three committed layers in the backend');
    await c.ctr(['images', 'rm', '--sync', img.name]);
    const left = await d.client.list({ snapshotter: HOST }, { namespace: null });
    assert.deepEqual(left.map((i) => i.name), [], 'garbage collection removed every backend snapshot');
    assert.deepEqual(snapshotDirs(d), [], 'and their directories');
  });

  test('erofs-vmdk (rewrite) profile: a container snapshot of a single-layer image is one contract v2 entry showing the layer', async () => {
    const layer = [...busyboxLayer(['sh', 'cat']), file('etc/only-layer', 'single layer image\n')];
    const img = buildOciArchive(path.join(c.dir, 'one-layer.tar'), { name: 'docker.io/library/erofs-vmdk-e2e:one', layers: [layer] });
    await c.ctr(['images', 'import', '--snapshotter', REWRITE, img.archive]);
    await c.ctr(['snapshots', '--snapshotter', REWRITE, 'prepare', 'e2e-vm-rootfs', img.chainIds[0]]);
    const mounts = parseCtrMounts((await c.ctr(['snapshots', '--snapshotter', REWRITE, 'mounts', '/run/vm-rootfs', 'e2e-vm-rootfs'])).stdout);
    // One entry and nothing else (no erofs lower left beside it); the embedded snapshot's fs/work as upper/work.
    const descriptor = assertContractV2(mounts, embeddedDirectoryLayer(d.root));
    assert.ok(fs.existsSync(descriptor), `descriptor ${descriptor} exists`);

    // The expected tree: the layer tar extracted by tar(1).
    const extracted = fs.mkdtempSync(path.join(c.dir, 'layer-'));
    const layerTar = path.join(c.dir, 'layer.tar');
    fs.writeFileSync(layerTar, tar(layer));
    execFileSync('tar', ['-xpf', layerTar, '-C', extracted]);
    assert.equal(comparable(await listFlatDescriptor(descriptor)), comparable(listTree(extracted)));

    await c.ctr(['snapshots', '--snapshotter', REWRITE, 'rm', 'e2e-vm-rootfs']);
    await c.ctr(['images', 'rm', '--sync', img.name]);
    assert.equal(fs.existsSync(descriptor), false, 'garbage collection removed the descriptor');
    assert.deepEqual(snapshotDirs(d), [], 'and the backend snapshots');
  });
});
