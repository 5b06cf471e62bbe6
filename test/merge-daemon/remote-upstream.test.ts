/**
 * Native merge through the daemon, remote backend (issue 5, acceptance 2):
 * the test upstream answers like stock containerd >= 2.3's EROFS snapshotter
 * with NO fsmeta anywhere, i.e. one `erofs` lower per layer. A container
 * Prepare with the `erofs-vmdk` profile over a 3-layer image (top layer: a
 * whiteout and an opaque directory) must come back as ONE contract v2 entry
 * (`fuse.erofs-vmdk-mount`, the upstream's upperdir/workdir as options), and
 * the flat image its descriptor describes (qemu-img convert, one loop
 * device, no device= options) must list exactly what kernel overlayfs shows
 * over the same three layer blobs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Mount } from '../../api/gen/containerd/types/mount';
import { assertContractV2, directoryLayerIn } from '../support/contract';
import { startDaemon, type TestDaemon, unpackFixture, type UnpackedImage } from '../support/daemon';
import { listErofsImage, listFlatDescriptor, listOverlay } from '../support/kernel-mounts';
import { startUpstream, type TestUpstream } from '../support/upstream';
import { buildThreeLayerBlobs, EXPECT, extentFiles, listingPaths } from './three-layers';

const REWRITE = 'erofs-vmdk';
const HOST = 'erofs-vmdk-host';

function listingLine(listing: string, rel: string): string[] | undefined {
  return listing
    .split('\n')
    .map((l) => l.split('\t'))
    .find((cols) => cols[0] === rel);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('native merge through the daemon (remote backend, upstream without fsmeta)', () => {
  let dir: string;
  let blobs: string[];
  let up: TestUpstream;
  let d: TestDaemon;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'merge-daemon-remote-'));
    blobs = buildThreeLayerBlobs(dir);
    // unpackFixture reads a case dir: layers.txt lists the blobs bottom first.
    fs.writeFileSync(path.join(dir, 'layers.txt'), blobs.map((b) => path.basename(b)).join('\n') + '\n');
    up = await startUpstream();
    d = await startDaemon({ upstream: up, logLevel: 'info' });
  });

  after(async () => {
    await d?.close();
    await up?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** containerd-like unpack: per layer an `extract-` Prepare, then Commit (the label tells the upstream where the blob is). */
  async function unpack(snapshotter: string, seq: number): Promise<UnpackedImage> {
    const image = await unpackFixture(d.client, { snapshotter, caseDir: dir, differ: 'label', fsmeta: false, seq });
    assert.equal(image.names.length, 3);
    return image;
  }

  test('a container Prepare returns one contract v2 entry whose flat image is the overlayfs-merged tree', async () => {
    const image = await unpack(REWRITE, 1);
    const key = `default/${image.seq}/container-rootfs`;
    const mounts = await d.client.prepare({ snapshotter: REWRITE, key, parent: image.top });
    assert.deepEqual(fs.readdirSync(up.root, { recursive: true }).filter((f) => String(f).endsWith('fsmeta.erofs')), [], 'the upstream has no fsmeta');

    // The upstream's upperdir and workdir (its snapshots/<id>/fs and work) ride on the one entry.
    const descriptor = assertContractV2(mounts, directoryLayerIn(path.join(up.root, 'snapshots')));
    assert.deepEqual(await d.client.mounts({ snapshotter: REWRITE, key }), mounts, 'Mounts answers like Prepare');

    // The descriptor is ours (daemon state dir); its extents are our merged
    // fsmeta followed by the three layer blobs themselves, bottom first: no
    // fsmeta was ever given to the daemon, and no layer data was copied.
    const root = fs.realpathSync(d.root);
    assert.ok(descriptor.startsWith(`${root}/`), `descriptor ${descriptor} under the daemon root ${root}`);
    const extents = extentFiles(descriptor);
    assert.equal(extents.length, 4, `fsmeta + 3 layers: ${extents.join(', ')}`);
    assert.ok(extents[0].startsWith(`${root}/`), `merged fsmeta ${extents[0]} lives in the daemon root`);
    assert.deepEqual(extents.slice(1), blobs.map((b) => fs.realpathSync(b)));

    assert.match(await listErofsImage(blobs[2]), /^etc\/doomed\tc\t.*\t0:0\t/m, 'the top layer blob holds the whiteout (char 0:0)');
    const flat = await listFlatDescriptor(descriptor);
    const oracle = await listOverlay(blobs);
    assert.equal(flat, oracle, 'flat image listing = kernel overlayfs over the same layers');

    const paths = listingPaths(flat);
    for (const p of EXPECT.present) assert.ok(paths.has(p), `${p} present`);
    for (const p of EXPECT.absent) assert.ok(!paths.has(p), `${p} absent (whiteout / opaque dir)`);
    for (const [p, content] of Object.entries(EXPECT.content)) assert.equal(listingLine(flat, p)?.[6], sha256(content), `${p} content`);
  });

  test('the pass-through profile returns the upstream erofs lowers unchanged, one per layer and no fsmeta', async () => {
    const image = await unpack(HOST, 100);
    const key = `default/${image.seq}/container-rootfs`;
    const mounts = await d.client.prepare({ snapshotter: HOST, key, parent: image.top });
    const lowers: Mount[] = mounts.slice(0, 3);
    assert.deepEqual(mounts.map((m) => m.type), ['erofs', 'erofs', 'erofs', 'format/mkdir/overlay'], `mounts: ${JSON.stringify(mounts)}`);
    assert.deepEqual(lowers.map((m) => m.source), [...blobs].reverse(), 'top layer first, pointing at the layer blobs');
    for (const m of lowers) assert.deepEqual(m.options, ['ro', 'loop'], 'no device= (no fsmeta)');
    assert.ok(mounts[3].options.includes('lowerdir={{ overlay 0 2 }}'), JSON.stringify(mounts[3].options));
  });
});
