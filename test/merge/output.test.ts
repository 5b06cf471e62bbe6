/**
 * Properties of the fsmeta we write, independent of mounting: deterministic,
 * metadata only, a valid superblock and device table that the flat-layout
 * validator accepts as is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { fixture } from '../support/fixtures';
import { withTempDir } from '../support/kernel-mounts';
import { mergeLayers, mergeLayersWithLayout } from '../../src/merge';
import { verifySuperblockChecksum } from '../../src/erofs/checksum';
import { FEATURE_INCOMPAT, parseDeviceTable, parseSuperblock } from '../../src/erofs/superblock';
import { validateFlatLayout } from '../../src/erofs/flat-layout';

const basic = ['layer1', 'layer2', 'layer3', 'layer4'].map((l) => fixture('basic', `${l}.erofs`));

test('the same layers give byte-identical output', () => {
  const a = mergeLayers(basic.map((p) => ({ path: p })));
  const b = mergeLayers(basic.map((p) => ({ path: p })));
  assert.ok(a.equals(b));
});

test('no file data is copied: the 300 KiB layer set merges into a 2-block image', () => {
  const fsmeta = mergeLayers(basic.map((p) => ({ path: p })));
  assert.equal(fsmeta.length, 2 * 4096);
});

test('superblock: checksum valid, device table with one slot per layer, size = blocks', () => {
  const { fsmeta, fsmetaBlocks, devices } = mergeLayersWithLayout(basic.map((p) => ({ path: p })));
  const sb = parseSuperblock(fsmeta);
  assert.ok(verifySuperblockChecksum(fsmeta, sb.blockSize).ok);
  assert.ok(sb.featureIncompat & FEATURE_INCOMPAT.DEVICE_TABLE);
  assert.equal(sb.featureIncompat & (FEATURE_INCOMPAT.BLOCKS_48BIT | FEATURE_INCOMPAT.METABOX), 0);
  assert.equal(sb.extraDevices, 4);
  assert.equal(sb.blocks, fsmetaBlocks);
  assert.equal(fsmeta.length, sb.blocks * sb.blockSize);
  assert.ok(sb.rootNid <= 0xffff);
  const slots = parseDeviceTable(fsmeta, sb);
  assert.deepEqual(
    slots.map((s) => ({ tag: s.tag, blocks: s.blocks, uniaddr: s.uniaddr })),
    devices.map((d) => ({ tag: d.tag, blocks: d.blocks, uniaddr: d.uniaddr })),
  );
});

test('explicit tags go into the slots in layer order', () => {
  const tags = ['sha256-aaa', 'sha256-bbb', 'sha256-ccc', 'sha256-ddd'];
  const fsmeta = mergeLayers(basic.map((p, i) => ({ path: p, tag: tags[i] })));
  assert.deepEqual(
    parseDeviceTable(fsmeta, parseSuperblock(fsmeta)).map((s) => s.tag),
    tags,
  );
});

test('the flat-layout validator accepts our fsmeta over plain layers without repair', async () => {
  await withTempDir((dir) => {
    const path = `${dir}/fsmeta.erofs`;
    fs.writeFileSync(path, mergeLayers(basic.map((p) => ({ path: p }))));
    const report = validateFlatLayout(path, basic);
    assert.deepEqual(report.problems, []);
  });
});
