/**
 * Mount contract v2 (docs/contract-v2.md): every flat plan becomes ONE
 * `fuse.erofs-vmdk-mount` entry whose options say what sits on top of the
 * EROFS root; shapes it cannot carry are refused before any disk is built.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotterError } from '../../src/errdefs';
import type { Mount } from '../../src/mount';
import { planRewrite, renderMounts, HOST_MOUNT_TYPE, type FlatPlan, type RewriteEnv } from '../../src/rewrite';

const R = '/var/lib/containerd/io.containerd.snapshotter.v1.erofs';
const blob = (id: number) => `${R}/snapshots/${id}/layer.erofs`;
const erofs = (id: number): Mount => ({ type: 'erofs', source: blob(id), target: '', options: ['ro', 'loop'] });
const fsmeta = (id: number, devices: number[]): Mount => ({
  type: 'erofs', source: `${R}/snapshots/${id}/fsmeta.erofs`, target: '', options: ['ro', 'loop', ...devices.map((d) => `device=${blob(d)}`)],
});
const overlay = (options: string[], type = 'format/mkdir/overlay'): Mount => ({ type, source: 'overlay', target: '', options });
const rwlayer = (id: number, size = 67108864): Mount => ({
  type: 'mkfs/ext4', source: `${R}/snapshots/${id}/rwlayer.img`, target: '',
  options: ['X-containerd.mkfs.fs=ext4', `X-containerd.mkfs.size=${size}`, 'rw', 'loop'],
});
const blockOverlay = (lower: string, extra: string[] = []) => overlay([
  'X-containerd.mkdir.path={{ mount 0 }}/upper:0755', 'X-containerd.mkdir.path={{ mount 0 }}/work:0755',
  'workdir={{ mount 0 }}/work', 'upperdir={{ mount 0 }}/upper', `lowerdir=${lower}`, ...extra,
]);
const DESCRIPTOR = '/var/lib/erofs-vmdk/vmdk/0123.vmdk';
const KEY = 'default/9/rootfs';
const BASE = ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'];
const noLegacy: RewriteEnv = { legacyLayerOf: () => undefined };

function renderV2(mounts: Mount[], env: RewriteEnv = noLegacy): Mount[] {
  const plan = planRewrite({ key: KEY, profile: 'erofs-vmdk', rewrite: true, mounts, contract: 2 }, env);
  assert.equal(plan.kind, 'flat');
  return renderMounts(plan as FlatPlan, DESCRIPTOR);
}

function entry(options: string[]): Mount[] {
  return [{ type: HOST_MOUNT_TYPE, source: DESCRIPTOR, target: '', options }];
}

function refusedV2(mounts: Mount[], message: RegExp): void {
  assert.throws(() => renderV2(mounts), (err: unknown) => {
    assert.ok(err instanceof SnapshotterError, String(err));
    assert.equal(err.kind, 'FailedPrecondition', err.message);
    assert.match(err.message, message);
    assert.ok(err.message.includes(JSON.stringify(KEY)), `names the key: ${err.message}`);
    return true;
  });
}

describe('contract v2: containerd >= 2.2 (mount manager) shapes', () => {
  it('a directory-mode container is one entry with the host upperdir and workdir', () => {
    const mounts = [erofs(3), erofs(2), erofs(1), overlay([`workdir=${R}/snapshots/4/work`, `upperdir=${R}/snapshots/4/fs`, 'lowerdir={{ overlay 0 2 }}'])];
    assert.deepEqual(renderV2(mounts), entry([...BASE, `upperdir=${R}/snapshots/4/fs`, `workdir=${R}/snapshots/4/work`]));
  });
  it('an fsmeta with devices under a container is still one entry', () => {
    const mounts = [fsmeta(3, [1, 2, 3]), overlay([`workdir=${R}/snapshots/4/work`, `upperdir=${R}/snapshots/4/fs`, 'lowerdir={{ mount 0 }}'])];
    assert.deepEqual(renderV2(mounts), entry([...BASE, `upperdir=${R}/snapshots/4/fs`, `workdir=${R}/snapshots/4/work`]));
  });
  it('a block-mode container names the ext4 image, its size and file system instead of mkfs/ext4 + templates', () => {
    const mounts = [rwlayer(5), erofs(2), erofs(1), blockOverlay('{{ overlay 1 2 }}')];
    assert.deepEqual(renderV2(mounts), entry([
      ...BASE, `X-erofs-vmdk.upper-image=${R}/snapshots/5/rwlayer.img`, 'X-erofs-vmdk.upper-image-size=67108864', 'X-erofs-vmdk.upper-image-fs=ext4',
    ]));
  });
  it('a view of one layer is read-only', () => {
    assert.deepEqual(renderV2([erofs(1)]), entry(['ro', ...BASE]));
  });
  it('a view of several layers (format/bind of the collapsed run) is read-only', () => {
    assert.deepEqual(renderV2([erofs(2), erofs(1), overlay(['lowerdir={{ overlay 0 1 }}'])]), entry(['ro', ...BASE]));
  });
  it('no template, format/ or mkfs/ prefix is left for containerd 1.6/1.7 mount.All', () => {
    const all = [
      renderV2([rwlayer(5), erofs(2), erofs(1), blockOverlay('{{ overlay 1 2 }}')]),
      renderV2([erofs(2), erofs(1), overlay([`workdir=${R}/w`, `upperdir=${R}/u`, 'lowerdir={{ overlay 0 1 }}'])]),
    ].flat();
    for (const m of all) {
      for (const field of [m.source, m.target, ...m.options]) assert.ok(!/\{\{/.test(field), field);
      assert.ok(!m.type.includes('/'), m.type);
    }
  });
});

describe('contract v2: legacy (containerd < 2.2) shapes', () => {
  const legacyEnv: RewriteEnv = { legacyLayerOf: (dir) => (dir.endsWith('/fs') ? `${dir.slice(0, -3)}/layer.erofs` : undefined) };
  const fs = (id: number) => `/var/lib/erofs-vmdk/embedded/snapshots/${id}/fs`;
  it('an active overlay over EROFS layers is one entry with its upper and work dirs', () => {
    const mounts = [overlay([`workdir=/w/7`, `upperdir=${fs(7)}`, `lowerdir=${fs(2)}:${fs(1)}`], 'overlay')];
    assert.deepEqual(renderV2(mounts, legacyEnv), entry([...BASE, `upperdir=${fs(7)}`, 'workdir=/w/7']));
  });
  it('a read-only view of several layers is read-only', () => {
    assert.deepEqual(renderV2([overlay([`lowerdir=${fs(2)}:${fs(1)}`], 'overlay')], legacyEnv), entry(['ro', ...BASE]));
  });
  it('a read-only bind of one layer is read-only', () => {
    assert.deepEqual(renderV2([{ type: 'bind', source: fs(1), target: '', options: ['ro', 'rbind'] }], legacyEnv), entry(['ro', ...BASE]));
  });
});

describe('contract v2: what one entry cannot carry is refused (contract = 1 keeps it)', () => {
  const active = (extra: string[]) => [erofs(2), erofs(1), overlay([`workdir=${R}/w`, `upperdir=${R}/u`, 'lowerdir={{ overlay 0 1 }}', ...extra])];
  it('an extra overlay option', () => refusedV2(active(['index=off']), /"index=off".*contract = 1/));
  it('an id mapping on the overlay', () => refusedV2(active(['uidmap=0:1000:1']), /uidmap/));
  it('an overlay with upperdir but no workdir', () =>
    refusedV2([erofs(2), erofs(1), overlay([`upperdir=${R}/u`, 'lowerdir={{ overlay 0 1 }}'])], /only one of upperdir and workdir/));
  it('an upperdir with a comma (it would split the option string on the host)', () =>
    refusedV2([erofs(1), erofs(2), overlay([`workdir=${R}/w`, `upperdir=${R}/u,x`, 'lowerdir={{ overlay 0 1 }}'])], /comma/));
  it('a block-mode layer that is not ext4', () => {
    const mkfs = { ...rwlayer(5), options: ['X-containerd.mkfs.fs=xfs', 'X-containerd.mkfs.size=1', 'rw', 'loop'] };
    refusedV2([mkfs, erofs(1), erofs(2), blockOverlay('{{ overlay 1 2 }}')], /X-containerd.mkfs.fs=xfs/);
  });
  it('a block-mode layer without a size', () => {
    const mkfs = { ...rwlayer(5), options: ['X-containerd.mkfs.fs=ext4', 'rw', 'loop'] };
    refusedV2([mkfs, erofs(1), erofs(2), blockOverlay('{{ overlay 1 2 }}')], /no X-containerd.mkfs.size/);
  });
  it('block mode whose upper is not the image\'s /upper', () => {
    const other = overlay(['workdir={{ mount 0 }}/work', 'upperdir={{ mount 0 }}/elsewhere', 'lowerdir={{ overlay 1 2 }}']);
    refusedV2([rwlayer(5), erofs(1), erofs(2), other], /upperdir is not \{\{ mount 0 \}\}\/upper/);
  });
  it('an unknown mount after the root', () =>
    refusedV2([erofs(1), { type: 'tmpfs', source: 'tmpfs', target: '/run', options: [] }], /\[<flat disk>, tmpfs\] has no contract v2 form/));
});

describe('contract v1 stays selectable', () => {
  it('the same plan renders the vmdk entry and the kept overlay when contract is 1', () => {
    const mounts = [erofs(2), erofs(1), overlay([`workdir=${R}/w`, `upperdir=${R}/u`, 'lowerdir={{ overlay 0 1 }}', 'index=off'])];
    const plan = planRewrite({ key: KEY, profile: 'erofs-vmdk', rewrite: true, mounts, contract: 1 }, noLegacy) as FlatPlan;
    const out = renderMounts(plan, DESCRIPTOR);
    assert.equal(out[0].type, 'vmdk');
    assert.deepEqual(out[1].options, [`workdir=${R}/w`, `upperdir=${R}/u`, 'lowerdir={{ mount 0 }}', 'index=off']);
  });
});
