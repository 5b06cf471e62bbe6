/**
 * Daemon-level assertions on rewritten root filesystems, for both mount
 * contracts (docs/contract-v2.md, go-shim-compat.md):
 *
 *   const descriptor = assertContractV2(mounts, { kind: 'directory', upperdir, workdir });
 *   const descriptor = assertContractV2(mounts, { kind: 'view' });
 *   const descriptor = descriptorOfRootfs(mounts);   // v1 list or v2 entry: the VMDK descriptor
 *
 * The type and options are spelled here as the contract document spells them
 * (not imported from src/rewrite), so a change of the wire format fails here.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';

/** Contract v2: the single entry's type. */
export const V2_TYPE = 'fuse.erofs-vmdk-mount';
/** Contract v2: the options every entry carries, in this order (after `ro` for a view). */
export const V2_CONTRACT_OPTIONS = ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'];
/** Contract v1: the `vmdk` mount's options. */
export const V1_VMDK_OPTIONS = ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'];

/** A mount as the daemon answers it, or as `ctr snapshots mounts` prints it (no target). */
export interface MountLike {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** An expected option value: exact, or a pattern the value must match. */
export type Want = string | RegExp;

/** Any absolute path a mount option can carry (no comma, no whitespace). */
export const ABSOLUTE_PATH = /^\/[^,\s]*$/;

/** The writable layer the v2 entry must carry; unspecified values must be absolute paths. */
export type V2Writable =
  | { kind: 'view' }
  | { kind: 'directory'; upperdir?: Want; workdir?: Want }
  | { kind: 'image'; image?: Want; size: number; fs?: 'ext4' };

/** The v2 options for `w`, in the documented order: [name, value] (value undefined: a flag). */
function v2Options(w: V2Writable): [string, Want | undefined][] {
  const fixed = V2_CONTRACT_OPTIONS.map((o): [string, undefined] => [o, undefined]);
  switch (w.kind) {
    case 'view':
      return [['ro', undefined], ...fixed];
    case 'directory':
      return [...fixed, ['upperdir', w.upperdir ?? ABSOLUTE_PATH], ['workdir', w.workdir ?? ABSOLUTE_PATH]];
    case 'image':
      return [
        ...fixed,
        ['X-erofs-vmdk.upper-image', w.image ?? ABSOLUTE_PATH],
        ['X-erofs-vmdk.upper-image-size', String(w.size)],
        ['X-erofs-vmdk.upper-image-fs', w.fs ?? 'ext4'],
      ];
  }
}

const DESCRIPTOR_PATH = /^\/.*\/vmdk\/[0-9a-f]{64}\.vmdk$/;

/**
 * Asserts `mounts` is exactly one contract v2 entry whose options are exactly
 * those of `w` (names, order and values); returns its source, the descriptor.
 */
export function assertContractV2(mounts: MountLike[], w: V2Writable): string {
  const shown = JSON.stringify(mounts);
  assert.equal(mounts.length, 1, `contract v2 is exactly one mount: ${shown}`);
  const [entry] = mounts;
  assert.equal(entry.type, V2_TYPE, shown);
  if (entry.target !== undefined) assert.equal(entry.target, '', shown);
  assert.match(entry.source, DESCRIPTOR_PATH, `source is the descriptor: ${shown}`);
  const want = v2Options(w);
  assert.equal(entry.options.length, want.length, `options ${JSON.stringify(entry.options)} are exactly ${JSON.stringify(want.map(([n]) => n))}`);
  want.forEach(([name, value], i) => {
    const got = entry.options[i];
    if (value === undefined) {
      assert.equal(got, name, `option ${i}`);
      return;
    }
    assert.ok(got.startsWith(`${name}=`), `option ${i} is ${name}=…: ${JSON.stringify(entry.options)}`);
    const actual = got.slice(name.length + 1);
    if (typeof value === 'string') assert.equal(actual, value, `${name}`);
    else assert.match(actual, value, `${name}`);
  });
  return entry.source;
}

/**
 * The VMDK descriptor of a rewritten root filesystem, whichever contract: a v2
 * answer (the single entry, alone or as a one-element list) or a v1 list
 * (exactly one `vmdk` mount, with the v1 options). Anything else fails.
 */
export function descriptorOfRootfs(mounts: MountLike[] | MountLike): string {
  const list = Array.isArray(mounts) ? mounts : [mounts];
  const shown = JSON.stringify(list);
  const v2 = list.filter((m) => m.type === V2_TYPE);
  const v1 = list.filter((m) => m.type === 'vmdk');
  assert.equal(v2.length + v1.length, 1, `exactly one rootfs disk mount (${V2_TYPE} or vmdk): ${shown}`);
  if (v2.length === 1) {
    assert.equal(list.length, 1, `a v2 entry stands alone: ${shown}`);
    const rest = v2[0].options[0] === 'ro' ? v2[0].options.slice(1) : v2[0].options;
    assert.deepEqual(rest.slice(0, V2_CONTRACT_OPTIONS.length), V2_CONTRACT_OPTIONS, shown);
  } else {
    assert.deepEqual(v1[0].options, V1_VMDK_OPTIONS, shown);
  }
  const source = (v2[0] ?? v1[0]).source;
  assert.ok(path.isAbsolute(source) && source.endsWith('.vmdk'), `descriptor path ${source}`);
  return source;
}

/** startDaemon `config` for the two default profiles with the rewriting one on contract 1 (the v1 `vmdk` list). */
export const CONTRACT_V1_CONFIG = { profiles: { 'erofs-vmdk': { rewrite: true, contract: 1 }, 'erofs-vmdk-host': { rewrite: false } } };

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The v2 directory layer of a container whose snapshotter keeps snapshot `<id>`
 * in `<snapshotsDir>/<id>/` with upperdir `fs` and workdir `work` (containerd's
 * EROFS snapshotter layout: the embedded backend's `<daemon root>/embedded/snapshots`,
 * src/backend/embedded/layout.ts, and the test upstream's `<root>/snapshots`).
 */
export function directoryLayerIn(snapshotsDir: string): V2Writable {
  const dir = `${escapeRegExp(snapshotsDir)}/[1-9][0-9]*`;
  return { kind: 'directory', upperdir: new RegExp(`^${dir}/fs$`), workdir: new RegExp(`^${dir}/work$`) };
}

/** directoryLayerIn for the embedded backend of a daemon whose root is `daemonRoot`. */
export function embeddedDirectoryLayer(daemonRoot: string): V2Writable {
  return directoryLayerIn(path.join(daemonRoot, 'embedded', 'snapshots'));
}
