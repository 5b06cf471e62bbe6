/**
 * Layer sets built from directories with Debian's mkfs.erofs 1.5: every overlay
 * rule and on-disk shape the merge handles, checked against the kernel. The
 * three listings (overlayfs over the layers, our fsmeta with device=, the flat
 * image) must be byte-identical; a few overlay facts are also spelled out so
 * the test reads as the specification.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { listMultiDevice, listOverlay, makeTempDir } from '../support/kernel-mounts';
import { buildLayer, type LayerTree } from './support/build-layer';
import { buildFeatureLayers, buildManyLayers } from './support/layer-sets';
import { threeViews } from './support/oracle';
import { mergeLayers } from '../../src/merge';

let work = '';
let features: string[] = [];

before(() => {
  work = makeTempDir('erofs-vmdk-merge-');
  features = buildFeatureLayers(work);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function paths(listing: string): string[] {
  return listing
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => l.split('\t')[0]);
}

function row(listing: string, path: string): string[] | undefined {
  return listing
    .split('\n')
    .map((l) => l.split('\t'))
    .find((cols) => cols[0] === path);
}

test('4 layers (whiteouts, opaque dirs, type changes, hard links, xattrs, inline tails, 400-entry dir): three identical listings', async () => {
  const views = await threeViews(features, work, 'features');
  assert.equal(views.multiDevice, views.overlay);
  assert.equal(views.flat, views.overlay);

  const listed = paths(views.overlay);
  // whiteouts hide, and are never listed
  for (const hidden of ['gone/x', 'gone/y', 'usr/lib/b-link', 'etc/f4096', 'never-existed', 'tail/t4097', 'big/entry-with-a-fairly-long-name-010']) {
    assert.ok(!listed.includes(hidden), `${hidden} is hidden`);
  }
  // a directory recreated above a whiteout does not merge with what the whiteout hid
  assert.ok(listed.includes('gone/new'));
  // opaque opq (layer 2) hides layer 1's content; layer 3 above it still merges
  assert.deepEqual(listed.filter((p) => p.startsWith('opq/')), ['opq/c', 'opq/d']);
  // a lower non-directory stops the merge of the directory above it (m: dir / file / dir)
  assert.deepEqual(listed.filter((p) => p.startsWith('m/')), ['m/a']);
  // type changes both ways
  assert.equal(row(views.overlay, 'file2dir')?.[1], 'd');
  assert.equal(row(views.overlay, 'dir2file')?.[1], 'f');
  // directory attributes come from the top-most layer that has the directory
  assert.equal(row(views.overlay, 'etc')?.[2], '0755');
  assert.equal(row(views.overlay, 'etc')?.[11], '1700200000');
  assert.equal(row(views.overlay, '.')?.[2], '0750');
  assert.equal(row(views.overlay, '.')?.[9], 'user.rootnote=top');
  // a hard-link pair keeps its link; the partner hidden by a whiteout leaves a plain file
  assert.equal(row(views.overlay, 'usr/lib/a-link')?.[10], 'usr/lib/a');
  assert.equal(row(views.overlay, 'usr/lib/b')?.[10], '-');
  // multi-block directory
  assert.equal(listed.filter((p) => p.startsWith('big/')).length, 400);
});

test('a single layer merged on its own (plain, and with inline tails) lists like the layer itself', async () => {
  for (const layer of [features[0], features[2]]) {
    const views = await threeViews([layer], work, 'single');
    assert.equal(views.multiDevice, views.overlay);
    assert.equal(views.flat, views.overlay);
  }
});

test('file tails copied into the fsmeta are read from the fsmeta even when block numbers line up with the layer', async () => {
  // 150 long names make the root directory two fsmeta blocks; "e" (4050 bytes) fits inline in the
  // layer but not after a 64-byte inode, so it takes another. Without care, each f<i> tail would land
  // on the block number right after its full block in the layer, and Linux's multi-device readahead
  // would then read the tail from the layer (found by the fuzz test).
  const tree: LayerTree = { e: { type: 'file', size: 4050 } };
  for (let i = 0; i < 150; i++) tree[`zz-some-long-directory-entry-name-${i}`] = { type: 'fifo' };
  for (let i = 0; i < 4; i++) tree[`f${i}`] = { type: 'file', size: 4097 + i };
  const layer = buildLayer(work, 'contiguous-tails', tree, { inlineData: true });
  const views = await threeViews([layer], work, 'contiguous-tails');
  assert.equal(views.multiDevice, views.overlay);
  assert.equal(views.flat, views.overlay);
});

test('chunk-based layers (block maps, deduplicated chunks) merge under and over plain layers', async () => {
  const chunked = buildLayer(
    work,
    'chunked',
    { 'd/a': { type: 'file', size: 20000 }, b: { type: 'file', size: 5000 }, zeros: { type: 'file', content: Buffer.alloc(50000) } },
    { extraArgs: ['--chunksize=4096'] },
  );
  const plain = buildLayer(work, 'over-chunked', { b: { type: 'file', size: 7 }, 'd/c': { type: 'file', size: 4097 } });
  for (const layers of [[chunked, plain], [plain, chunked]]) {
    const views = await threeViews(layers, work, 'chunked');
    assert.equal(views.multiDevice, views.overlay);
    assert.equal(views.flat, views.overlay);
  }
});

test('130 small layers: three identical listings', async () => {
  const layers = buildManyLayers(work, 130);
  const views = await threeViews(layers, work, 'many');
  assert.equal(views.result.devices.length, 130);
  assert.equal(views.multiDevice, views.overlay);
  assert.equal(views.flat, views.overlay);
  // /stack was made opaque by layer 125 (index 125): only layers 125..129 show through
  assert.deepEqual(
    paths(views.overlay).filter((p) => p.startsWith('stack/')),
    ['stack/s125', 'stack/s126', 'stack/s127', 'stack/s128', 'stack/s129'],
  );
});

test('overlay artefact: a whiteout in a directory only one layer has is listed by overlayfs but cannot be looked up; the merged image just omits it', async () => {
  const lower = buildLayer(work, 'artefact-lower', { a: { type: 'file', size: 3 } });
  const bare = buildLayer(work, 'artefact-bare', { 'newdir/w': { type: 'whiteout' }, 'newdir/f': { type: 'file', size: 3 } });
  // The same upper layer the way mkfs.erofs --tar --aufs writes it: the parent of a whiteout carries
  // an empty trusted.overlay.origin, which makes overlayfs filter whiteouts when listing the directory.
  const marked = buildLayer(work, 'artefact-marked', {
    newdir: { type: 'dir', xattrs: { 'trusted.overlay.origin': '' } },
    'newdir/w': { type: 'whiteout' },
    'newdir/f': { type: 'file', size: 3 },
  });
  await assert.rejects(listOverlay([lower, bare]), /No such file or directory: .*newdir\/w/);
  const fsmeta = `${work}/artefact.fsmeta.erofs`;
  fs.writeFileSync(fsmeta, mergeLayers([{ path: lower }, { path: bare }]));
  const ours = await listMultiDevice(fsmeta, [lower, bare]);
  assert.equal(ours, await listOverlay([lower, marked]));
  assert.ok(!paths(ours).includes('newdir/w'));
});

test('an opaque marker on a layer root is ignored, and only the value "y" makes a directory opaque (as overlayfs does)', async () => {
  const lower = buildLayer(work, 'opq-lower', { a: { type: 'file', size: 3 }, 'd/x': { type: 'file', size: 3 } });
  const upper = buildLayer(work, 'opq-upper', {
    '.': { type: 'dir', xattrs: { 'trusted.overlay.opaque': 'y' } },
    b: { type: 'file', size: 3 },
    d: { type: 'dir', xattrs: { 'trusted.overlay.opaque': 'yes' } },
    'd/y': { type: 'file', size: 1 },
  });
  const views = await threeViews([lower, upper], work, 'opaque-values');
  assert.equal(views.multiDevice, views.overlay);
  assert.equal(views.flat, views.overlay);
  assert.deepEqual(paths(views.overlay), ['.', 'a', 'b', 'd', 'd/x', 'd/y']);
});
