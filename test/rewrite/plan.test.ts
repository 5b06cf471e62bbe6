import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotterError } from '../../src/errdefs';
import type { Mount } from '../../src/mount';
import { MAX_LAYERS, planRewrite, renderMounts, type FlatPlan, type RewriteEnv, type RewritePlan } from '../../src/rewrite';

// containerd 2.2+ EROFS snapshotter shapes (plugins/snapshots/erofs/erofs.go), R = its root.
const R = '/var/lib/containerd/io.containerd.snapshotter.v1.erofs';
const blob = (id: number) => `${R}/snapshots/${id}/layer.erofs`;
const fsmetaOf = (id: number) => `${R}/snapshots/${id}/fsmeta.erofs`;
const erofs = (id: number): Mount => ({ type: 'erofs', source: blob(id), target: '', options: ['ro', 'loop'] });
const fsmeta = (id: number, devices: number[]): Mount => ({
  type: 'erofs', source: fsmetaOf(id), target: '', options: ['ro', 'loop', ...devices.map((d) => `device=${blob(d)}`)],
});
const overlay = (options: string[], type = 'format/mkdir/overlay'): Mount => ({ type, source: 'overlay', target: '', options });
const active = (id: number, lower: string, extra: string[] = []) =>
  overlay([`workdir=${R}/snapshots/${id}/work`, `upperdir=${R}/snapshots/${id}/fs`, `lowerdir=${lower}`, ...extra]);
const DESCRIPTOR = '/var/lib/erofs-vmdk/vmdk/0123.vmdk';
const VMDK: Mount = { type: 'vmdk', source: DESCRIPTOR, target: '', options: ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'] };

const KEY = 'default/7/container-rootfs';
const noLegacy: RewriteEnv = { legacyLayerOf: () => undefined };

function plan(mounts: Mount[], options: { key?: string; rewrite?: boolean; env?: RewriteEnv } = {}): RewritePlan {
  return planRewrite({ key: options.key ?? KEY, profile: 'erofs-vmdk', rewrite: options.rewrite ?? true, mounts }, options.env ?? noLegacy);
}

function flat(mounts: Mount[], env?: RewriteEnv): FlatPlan {
  const p = plan(mounts, { env });
  assert.equal(p.kind, 'flat', `expected a flat plan, got ${JSON.stringify(p)}`);
  return p as FlatPlan;
}

function refusedWith(mounts: Mount[], kind: string, message: RegExp, env?: RewriteEnv): void {
  assert.throws(() => plan(mounts, { env }), (err: unknown) => {
    assert.ok(err instanceof SnapshotterError, `not a SnapshotterError: ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    assert.match(err.message, message);
    assert.ok(err.message.includes(JSON.stringify(KEY)), `message names the key: ${err.message}`);
    return true;
  });
}

describe('planRewrite: pass-through cases', () => {
  const fourLayers = [erofs(4), erofs(3), erofs(2), erofs(1), active(5, '{{ overlay 0 3 }}')];
  it('a pass-through profile never rewrites', () => {
    assert.deepEqual(plan(fourLayers, { rewrite: false }), { kind: 'passthrough', reason: 'profile' });
  });
  it('an unpack (extract) key never rewrites, even with erofs lowers', () => {
    assert.deepEqual(plan(fourLayers, { key: 'default/12/extract-1234-AbCd sha256:abc' }), { kind: 'passthrough', reason: 'extract-key' });
  });
  it('a parentless active snapshot (bind of fs) has nothing to flatten', () => {
    const bind: Mount = { type: 'bind', source: `${R}/snapshots/1/fs`, target: '', options: ['rw', 'rbind'] };
    assert.deepEqual(plan([bind]), { kind: 'passthrough', reason: 'no-erofs-lower' });
  });
  it('block mode parentless active (mkfs + bind) has nothing to flatten', () => {
    const mounts: Mount[] = [
      { type: 'mkfs/ext4', source: `${R}/snapshots/1/rwlayer.img`, target: '', options: ['X-containerd.mkfs.fs=ext4', 'X-containerd.mkfs.size=1073741824', 'rw', 'loop'] },
      { type: 'format/mkdir/bind', source: '{{ mount 0 }}/upper', target: '', options: ['X-containerd.mkdir.path={{ mount 0 }}/upper:0755', 'rw', 'rbind'] },
    ];
    assert.deepEqual(plan(mounts), { kind: 'passthrough', reason: 'no-erofs-lower' });
  });
});

describe('planRewrite: containerd >= 2.2 shapes', () => {
  const cases: { name: string; mounts: Mount[]; source: string; layers: string[]; fsmeta?: string; out: Mount[] }[] = [
    {
      name: 'view of one layer: the erofs mount alone',
      mounts: [erofs(1)],
      source: 'single', layers: [blob(1)],
      out: [VMDK],
    },
    {
      name: 'active with one parent',
      mounts: [erofs(1), active(2, '{{ mount 0 }}')],
      source: 'single', layers: [blob(1)],
      out: [VMDK, active(2, '{{ mount 0 }}')],
    },
    {
      name: 'active with four plain lowers (top first) needs a merge',
      mounts: [erofs(4), erofs(3), erofs(2), erofs(1), active(5, '{{ overlay 0 3 }}')],
      source: 'merge', layers: [blob(1), blob(2), blob(3), blob(4)],
      out: [VMDK, active(5, '{{ mount 0 }}')],
    },
    {
      name: 'fsmeta covering every layer (device= bottom first)',
      mounts: [fsmeta(4, [1, 2, 3, 4]), active(5, '{{ mount 0 }}')],
      source: 'fsmeta', layers: [blob(1), blob(2), blob(3), blob(4)], fsmeta: fsmetaOf(4),
      out: [VMDK, active(5, '{{ mount 0 }}')],
    },
    {
      name: 'plain lowers above an fsmeta need a merge of all layers',
      mounts: [erofs(6), erofs(5), fsmeta(4, [1, 2, 3, 4]), active(7, '{{ overlay 0 2 }}')],
      source: 'merge', layers: [blob(1), blob(2), blob(3), blob(4), blob(5), blob(6)], fsmeta: fsmetaOf(4),
      out: [VMDK, active(7, '{{ mount 0 }}')],
    },
    {
      name: 'id mappings and extra overlay options are kept unchanged',
      mounts: [erofs(2), erofs(1), active(3, '{{ overlay 0 1 }}', ['uidmap=0:100000:65536', 'gidmap=0:100000:65536', 'index=off'])],
      source: 'merge', layers: [blob(1), blob(2)],
      out: [VMDK, active(3, '{{ mount 0 }}', ['uidmap=0:100000:65536', 'gidmap=0:100000:65536', 'index=off'])],
    },
    {
      name: 'dm-verity explicitly off: nothing to lose, option dropped',
      mounts: [{ ...erofs(1), options: ['ro', 'loop', 'X-containerd.dmverity=off'] }, active(2, '{{ mount 0 }}')],
      source: 'single', layers: [blob(1)],
      out: [VMDK, active(2, '{{ mount 0 }}')],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const p = flat(c.mounts);
      assert.equal(p.source, c.source);
      assert.equal(p.shape, 'mount-manager');
      assert.deepEqual(p.layers, c.layers);
      assert.equal(p.fsmeta, c.fsmeta);
      assert.deepEqual(renderMounts(p, DESCRIPTOR), c.out);
    });
  }

  it('block mode: mkfs/ext4 stays first, the run collapses at index 1 and templates follow', () => {
    const mkfs: Mount = { type: 'mkfs/ext4', source: `${R}/snapshots/9/rwlayer.img`, target: '', options: ['X-containerd.mkfs.fs=ext4', 'X-containerd.mkfs.size=1073741824', 'rw', 'loop'] };
    const upper = [
      'X-containerd.mkdir.path={{ mount 0 }}/upper:0755', 'X-containerd.mkdir.path={{ mount 0 }}/work:0755',
      'workdir={{ mount 0 }}/work', 'upperdir={{ mount 0 }}/upper',
    ];
    const p = flat([mkfs, erofs(3), erofs(2), erofs(1), overlay([...upper, 'lowerdir={{ overlay 1 3 }}'])]);
    assert.deepEqual(p.layers, [blob(1), blob(2), blob(3)]);
    assert.deepEqual(renderMounts(p, DESCRIPTOR), [mkfs, { ...VMDK }, overlay([...upper, 'lowerdir={{ mount 1 }}'])]);
  });

  it('a view whose lowers collapse to one becomes a read-only bind (overlayfs needs two lowers without an upper)', () => {
    const p = flat([erofs(3), erofs(2), erofs(1), overlay(['lowerdir={{ overlay 0 2 }}'])]);
    assert.deepEqual(renderMounts(p, DESCRIPTOR), [VMDK, { type: 'format/bind', source: '{{ mount 0 }}', target: '', options: ['ro', 'rbind'] }]);
  });

  it('a view already shaped as format/bind of the fsmeta mount is kept', () => {
    const bind: Mount = { type: 'format/bind', source: '{{ mount 0 }}', target: '', options: ['ro', 'rbind'] };
    const p = flat([fsmeta(3, [1, 2, 3]), bind]);
    assert.equal(p.source, 'fsmeta');
    assert.deepEqual(renderMounts(p, DESCRIPTOR), [VMDK, bind]);
  });

  it('mounts after the overlay are renumbered too', () => {
    const p = flat([erofs(3), erofs(2), erofs(1), active(4, '{{ overlay 0 2 }}'), { type: 'format/bind', source: '{{ mount 3 }}/sub', target: '', options: ['ro', 'rbind'] }]);
    assert.equal(renderMounts(p, DESCRIPTOR)[2].source, '{{ mount 1 }}/sub');
  });

  it('the output never shares arrays with the plan', () => {
    const p = flat([erofs(1), active(2, '{{ mount 0 }}')]);
    const out = renderMounts(p, DESCRIPTOR);
    out[1].options.push('mutated');
    out[0].options.push('mutated');
    assert.deepEqual(renderMounts(p, DESCRIPTOR), [VMDK, active(2, '{{ mount 0 }}')]);
  });
});

describe('planRewrite: refusals', () => {
  const withOption = (option: string) => [{ ...erofs(1), options: ['ro', 'loop', option] }, active(2, '{{ mount 0 }}')];
  it('dm-verity on a layer (the flat disk would bypass verification)', () => refusedWith(withOption('X-containerd.dmverity=on'), 'FailedPrecondition', /dm-verity/));
  it('dm-verity root hash options', () => refusedWith(withOption('X-containerd.dmverity.roothash=abc'), 'FailedPrecondition', /dm-verity/));
  it('an id-mapped layer mount', () => refusedWith(withOption('uidmap=0:1000:1'), 'FailedPrecondition', /id mapping/));
  it('an unknown layer option', () => refusedWith(withOption('cache_strategy=readaround'), 'FailedPrecondition', /cache_strategy/));
  it('a read-write layer', () => refusedWith(withOption('rw'), 'FailedPrecondition', /read-write/));
  it('device= on a mount that is not the bottom of the run', () =>
    refusedWith([fsmeta(2, [1, 2]), erofs(1), active(3, '{{ overlay 0 1 }}')], 'FailedPrecondition', /not the bottom/));
  it('erofs mounts that are not contiguous', () =>
    refusedWith([erofs(2), active(3, '{{ mount 0 }}'), erofs(1)], 'FailedPrecondition', /contiguous/));
  it('an erofs mount behind a mount-manager prefix', () =>
    refusedWith([{ ...erofs(1), type: 'format/erofs' }], 'FailedPrecondition', /format\/erofs/));
  it('an overlay covering part of the run', () =>
    refusedWith([erofs(3), erofs(2), erofs(1), active(4, '{{ overlay 0 1 }}')], 'FailedPrecondition', /part of the rewritten erofs run/));
  it(`more than ${MAX_LAYERS} layers`, () => {
    const many = Array.from({ length: MAX_LAYERS + 1 }, (_, i) => erofs(MAX_LAYERS + 1 - i));
    refusedWith([...many, active(9999, `{{ overlay 0 ${MAX_LAYERS} }}`)], 'FailedPrecondition', /at most/);
  });

  const hostile: [string, string][] = [
    ['a double quote', `${R}/snapshots/1/la"yer.erofs`],
    ['a line feed', `${R}/snapshots/1/la\nyer.erofs`],
    ['a carriage return', `${R}/snapshots/1/la\ryer.erofs`],
    ['a space', `${R}/snapshots/1/la yer.erofs`],
  ];
  for (const [what, bad] of hostile) {
    it(`a layer path with ${what} is InvalidArgument naming the key`, () =>
      refusedWith([{ ...erofs(1), source: bad }, active(2, '{{ mount 0 }}')], 'InvalidArgument', /erofs mount 0 source/));
    it(`a device= path with ${what} is InvalidArgument naming the key`, () =>
      refusedWith([{ ...fsmeta(2, [1]), options: ['ro', 'loop', `device=${bad}`, `device=${blob(2)}`] }], 'InvalidArgument', /device 1/));
  }
  it('a relative layer path is InvalidArgument', () =>
    refusedWith([{ ...erofs(1), source: 'snapshots/1/layer.erofs' }], 'InvalidArgument', /not absolute/));
});

describe('planRewrite: legacy shape (containerd < 2.2, layers mounted on <dir>/fs)', () => {
  const fs = (id: number) => `${R}/snapshots/${id}/fs`;
  const withBlobs = (ids: number[]): RewriteEnv => ({
    legacyLayerOf: (dir) => ids.map(fs).includes(dir) ? dir.replace(/\/fs$/, '/layer.erofs') : undefined,
  });
  const legacy = (options: string[]): Mount => ({ type: 'overlay', source: 'overlay', target: '', options });
  const upper = [`workdir=${R}/snapshots/9/work`, `upperdir=${R}/snapshots/9/fs`];

  it('an active overlay over EROFS layers becomes [vmdk, format/overlay lowerdir={{ mount 0 }}]', () => {
    const p = flat([legacy([...upper, `lowerdir=${fs(3)}:${fs(2)}:${fs(1)}`, 'index=off'])], withBlobs([1, 2, 3]));
    assert.equal(p.shape, 'legacy');
    assert.equal(p.source, 'merge');
    assert.deepEqual(p.layers, [blob(1), blob(2), blob(3)]);
    assert.deepEqual(renderMounts(p, DESCRIPTOR), [VMDK, { type: 'format/overlay', source: 'overlay', target: '', options: [...upper, 'lowerdir={{ mount 0 }}', 'index=off'] }]);
  });
  it('one lowerdir is a single-layer disk', () => {
    const p = flat([legacy([...upper, `lowerdir=${fs(1)}`])], withBlobs([1]));
    assert.equal(p.source, 'single');
    assert.deepEqual(p.layers, [blob(1)]);
  });
  it('a read-only view of several layers becomes a bind of the vmdk mount', () => {
    const p = flat([legacy([`lowerdir=${fs(2)}:${fs(1)}`])], withBlobs([1, 2]));
    assert.deepEqual(renderMounts(p, DESCRIPTOR), [VMDK, { type: 'format/bind', source: '{{ mount 0 }}', target: '', options: ['ro', 'rbind'] }]);
  });
  it('lowerdirs without layer.erofs (another snapshotter upstream) pass through', () => {
    assert.deepEqual(plan([legacy([...upper, `lowerdir=${fs(2)}:${fs(1)}`])]), { kind: 'passthrough', reason: 'not-erofs-layers' });
  });
  it('a mix of EROFS and non-EROFS lowerdirs is refused', () =>
    refusedWith([legacy([...upper, `lowerdir=${fs(2)}:${fs(1)}`])], 'FailedPrecondition', /no layer\.erofs/, withBlobs([1])));
  it('the planner asks the injected function, and only about lowerdirs', () => {
    const asked: string[] = [];
    plan([legacy([...upper, `lowerdir=${fs(2)}:${fs(1)}`])], { env: { legacyLayerOf: (d) => { asked.push(d); return undefined; } } });
    assert.deepEqual(asked, [fs(2), fs(1)]);
  });
});
