/**
 * The shared fixture corpus (mkfs.erofs 1.9.3 layers): our merged image must
 * show exactly the overlay oracle's tree, mounted with one loop device per layer
 * (device=) and as the flat image of a VMDK descriptor; mixed block sizes are
 * refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { fixture } from '../support/fixtures';
import { withTempDir } from '../support/kernel-mounts';
import { MergeError, mergeLayers, mergeLayersWithLayout } from '../../src/merge';
import { parseDeviceTable, parseSuperblock } from '../../src/erofs/superblock';
import { threeViews } from './support/oracle';

function fixtureLayers(name: string): string[] {
  return fs
    .readFileSync(fixture(name, 'layers.txt'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => fixture(name, l.trim()));
}

for (const name of ['basic', 'single', 'taridx']) {
  test(`${name}: overlay oracle, multi-device mount and flat image of our fsmeta list the same tree`, async () => {
    await withTempDir(async (work) => {
      const views = await threeViews(fixtureLayers(name), work, name);
      assert.equal(views.overlay, fs.readFileSync(fixture(name, 'expected.tsv'), 'utf8'), 'overlay oracle reproduces expected.tsv');
      assert.equal(views.multiDevice, views.overlay, 'fsmeta + device= loop devices');
      assert.equal(views.flat, views.overlay, 'flat image via qemu-img convert of the descriptor');
    });
  });
}

test('basic: the device table matches the one mkfs.erofs 1.9.3 wrote (tags = layer UUIDs, blocks, cumulative uniaddr)', () => {
  const ours = mergeLayers(fixtureLayers('basic').map((p) => ({ path: p })));
  const theirs = fs.readFileSync(fixture('basic', 'fsmeta.erofs'));
  const slots = (image: Buffer) => parseDeviceTable(image, parseSuperblock(image)).map(({ tag, blocks, uniaddr }) => ({ tag, blocks, uniaddr }));
  assert.deepEqual(slots(ours), slots(theirs));
});

test('taridx: tar-index layers are addressed as whole files (device k = layer file k, in both mount modes)', () => {
  const layers = fixtureLayers('taridx');
  const result = mergeLayersWithLayout(layers.map((p) => ({ path: p })));
  assert.equal(result.blockSize, 512);
  // layer1: 10 index blocks + 671 tar blocks; each slot starts where the previous whole extent ends.
  assert.deepEqual(
    result.devices.map((d) => d.blocks),
    [681, 18, 25, 18],
  );
  let next = result.fsmetaBlocks;
  for (const d of result.devices) {
    assert.equal(d.uniaddr, next);
    assert.ok(d.blocks * 512 <= fs.statSync(d.path).size, 'extent inside the layer file');
    next += d.blocks;
  }
});

for (const name of ['mixedbs', 'mixedbs-bottom512']) {
  test(`${name}: layers with different block sizes are refused with a reason`, () => {
    assert.throws(
      () => mergeLayers(fixtureLayers(name).map((p) => ({ path: p }))),
      (err: unknown) => err instanceof MergeError && err.code === 'mixed-block-sizes' && /512-byte blocks/.test(err.message),
    );
  });
}
