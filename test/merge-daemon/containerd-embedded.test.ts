/**
 * Native merge through the daemon with the embedded backend, driven by a real
 * containerd (Debian's 1.6 here; issue 5, acceptance 2).
 *
 * containerd imports a 3-layer OCI image (top layer: an OCI whiteout and an
 * opaque directory) with `--snapshotter erofs-vmdk`: its own differ applies
 * the tars onto our snapshots (overlay whiteouts in the upperdir) and the
 * embedded backend converts each committed layer to layer.erofs. Nobody
 * builds an fsmeta. A container snapshot prepared by `ctr` with the
 * `erofs-vmdk` profile must come back as ONE contract v2 entry
 * (`fuse.erofs-vmdk-mount`), and the flat image its descriptor describes must
 * show the merged tree. Two oracles, neither of them our
 * merge: kernel overlayfs over the backend's layer.erofs blobs (exact
 * listing), and the layer tars extracted by tar(1) with OCI whiteouts applied
 * by the test (listing without mtimes).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { parseCtrMounts, startDaemonWithContainerd, type TestContainerd } from '../support/containerd';
import { assertContractV2, embeddedDirectoryLayer } from '../support/contract';
import type { TestDaemon } from '../support/daemon';
import { listErofsImage, listFlatDescriptor, listOverlay, listTree } from '../support/kernel-mounts';
import { buildOciArchive, dir, file, tar, type TarEntry, whiteout } from '../support/oci-image';
import { EXPECT, extentFiles, listingPaths } from './three-layers';

const REWRITE = 'erofs-vmdk';

/** OCI opaque-directory marker: hides everything the layers below have in `p`. */
const opaque = (p: string): TarEntry => file(path.posix.join(p, '.wh..wh..opq'), '');

/** The same tree as three-layers.ts, as OCI layer tars (explicit dir entries, so modes are defined). */
const OCI_LAYERS: TarEntry[][] = [
  [
    dir('etc'),
    file('etc/issue', 'base layer issue\n'),
    file('etc/doomed', 'whited out by the top layer\n'),
    file('etc/keep', 'kept from the bottom layer\n'),
    dir('var'),
    dir('var/lib'),
    dir('var/lib/app'),
    file('var/lib/app/old', 'hidden by the opaque dir\n'),
    file('var/lib/app/stale', 'also hidden\n'),
    dir('usr'),
    dir('usr/share'),
    dir('usr/share/doc'),
    file('usr/share/doc/readme', 'x'.repeat(5000)),
  ],
  [dir('etc'), file('etc/message', 'hello from layer 2\n'), file('etc/issue', 'layer 2 issue\n'), dir('var/lib/app'), file('var/lib/app/middle', 'hidden too\n')],
  [dir('etc'), whiteout('etc/doomed'), dir('var/lib/app'), opaque('var/lib/app'), file('var/lib/app/fresh', 'only entry of the opaque dir\n'), file('etc/top', 'from the top layer\n')],
];

/**
 * Oracle 2: the layers applied in order into one directory the way an OCI
 * runtime unpacks an image: a layer's whiteouts (`.wh.X` removes X, `.wh..wh..opq`
 * empties its directory) take effect on the layers below, then tar(1) extracts
 * the layer's other entries.
 */
function applyOciLayers(target: string, layers: TarEntry[][], scratch: string): void {
  fs.mkdirSync(target, { recursive: true });
  layers.forEach((entries, i) => {
    for (const e of entries) {
      const base = path.posix.basename(e.path);
      if (base === '.wh..wh..opq') {
        const d = path.join(target, path.posix.dirname(e.path));
        if (fs.existsSync(d)) for (const child of fs.readdirSync(d)) fs.rmSync(path.join(d, child), { recursive: true, force: true });
      } else if (base.startsWith('.wh.')) {
        fs.rmSync(path.join(target, path.posix.dirname(e.path), base.slice('.wh.'.length)), { recursive: true, force: true });
      }
    }
    const layerTar = path.join(scratch, `oracle-layer${i + 1}.tar`);
    fs.writeFileSync(layerTar, tar(entries));
    execFileSync('tar', ['-xpf', layerTar, '-C', target, '--exclude=.wh.*']);
  });
}

/** Listing without the root line and the mtime column (tar and containerd set directory mtimes differently). */
function withoutMtimes(listing: string): string {
  return listing
    .split('\n')
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('.\t'))
    .map((l) => l.split('\t').slice(0, -1).join('\t'))
    .join('\n');
}

/**
 * The backend's layer.erofs of each committed image layer, bottom first,
 * found from its metadata (documented layout: snapshots.db, snapshots/<id>/layer.erofs)
 * by containerd's snapshot names (chain IDs) — not from our descriptor.
 */
function backendLayerBlobs(d: TestDaemon, chainIds: string[]): string[] {
  const root = path.join(d.root, 'embedded');
  const db = new Database(path.join(root, 'snapshots.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT id, key FROM snapshots WHERE kind = 'committed'").all() as { id: number; key: string }[];
    return chainIds.map((chain) => {
      const hits = rows.filter((r) => r.key.startsWith(`${REWRITE}/`) && r.key.endsWith(`/${chain}`));
      assert.equal(hits.length, 1, `one committed backend snapshot for ${chain}: ${JSON.stringify(rows)}`);
      return path.join(root, 'snapshots', String(hits[0].id), 'layer.erofs');
    });
  } finally {
    db.close();
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('native merge through the daemon (embedded backend, real containerd)', () => {
  let d: TestDaemon;
  let c: TestContainerd;
  let stop: (() => Promise<void>) | undefined;

  before(async () => {
    ({ daemon: d, containerd: c, close: stop } = await startDaemonWithContainerd());
  });

  after(async () => {
    await stop?.();
  });

  test('a container snapshot of a 3-layer image with a whiteout is one contract v2 entry showing the merged tree', async () => {
    const img = buildOciArchive(path.join(c.dir, 'merge-three.tar'), { name: 'docker.io/library/erofs-vmdk-merge:three', layers: OCI_LAYERS });
    await c.ctr(['images', 'import', '--snapshotter', REWRITE, img.archive]);
    await c.ctr(['snapshots', '--snapshotter', REWRITE, 'prepare', 'merge-rootfs', img.chainIds[2]]);
    const mounts = parseCtrMounts((await c.ctr(['snapshots', '--snapshotter', REWRITE, 'mounts', '/run/merge-rootfs', 'merge-rootfs'])).stdout);

    const descriptor = assertContractV2(mounts, embeddedDirectoryLayer(d.root));
    const root = fs.realpathSync(d.root);
    assert.ok(descriptor.startsWith(`${root}/`), `descriptor ${descriptor} under the daemon root ${root}`);

    const flat = await listFlatDescriptor(descriptor);

    // Oracle 1: kernel overlayfs over the backend's three layer blobs.
    const blobs = backendLayerBlobs(d, img.chainIds);
    // The top blob really carries the overlay whiteout containerd's differ wrote.
    assert.match(await listErofsImage(blobs[2]), /^etc\/doomed\tc\t.*\t0:0\t/m, 'layer 3 blob holds the whiteout (char 0:0)');
    // The descriptor is our merged fsmeta then the layer blobs in place, bottom first.
    assert.deepEqual(extentFiles(descriptor).slice(1), blobs.map((b) => fs.realpathSync(b)), 'extents 1..3 are the layer blobs');
    assert.ok(extentFiles(descriptor)[0].startsWith(`${root}/`) && !extentFiles(descriptor)[0].startsWith(path.join(root, 'embedded')), 'extent 0: merged fsmeta in the proxy state, not in the backend');
    assert.equal(flat, await listOverlay(blobs), 'flat image listing = kernel overlayfs over the layer.erofs blobs');

    // Oracle 2: the OCI layer tars applied with whiteouts by tar(1).
    const applied = fs.mkdtempSync(path.join(c.dir, 'applied-'));
    applyOciLayers(path.join(applied, 'rootfs'), OCI_LAYERS, applied);
    assert.equal(withoutMtimes(flat), withoutMtimes(listTree(path.join(applied, 'rootfs'))), 'flat image = OCI layers applied by tar');

    const paths = listingPaths(flat);
    for (const p of EXPECT.present) assert.ok(paths.has(p), `${p} present`);
    for (const p of EXPECT.absent) assert.ok(!paths.has(p), `${p} absent (whiteout / opaque dir)`);
    for (const [p, content] of Object.entries(EXPECT.content)) {
      const line = flat.split('\n').find((l) => l.startsWith(`${p}\t`));
      assert.equal(line?.split('\t')[6], sha256(content), `${p} content`);
    }

    await c.ctr(['snapshots', '--snapshotter', REWRITE, 'rm', 'merge-rootfs']);
    await c.ctr(['images', 'rm', '--sync', img.name]);
  });
});
