import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import {
  FlatLayoutError,
  prepareFlatDisk,
  repairFlatLayout,
  validateFlatLayout,
  validateSingleImage,
  writeSuperblockChecksum,
  type LayoutProblem,
} from '../../src/erofs';
import { fixture } from '../support/fixtures';
import { withTempDir } from '../support/kernel-mounts';

function layersOf(c: string): string[] {
  return fs.readFileSync(fixture(c, 'layers.txt'), 'utf8').trim().split('\n').map((l) => fixture(c, l.trim()));
}
const basicLayers = layersOf('basic');
const codes = (ps: LayoutProblem[]) => ps.map((p) => p.code);
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function refusal(fn: () => unknown): FlatLayoutError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FlatLayoutError, `expected FlatLayoutError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /[\r\n]/);
    return err;
  }
  assert.fail('expected a refusal');
}

test('basic: clean, slots 89/4/3/3 at 2/91/95/98', () => {
  const r = validateFlatLayout(fixture('basic', 'fsmeta.erofs'), basicLayers);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.layout?.blobs.map((b) => [b.kind, b.blocks, b.uniaddr, b.regionBytes]), [
    ['plain', 89, 2, 364544],
    ['plain', 4, 91, 16384],
    ['plain', 3, 95, 12288],
    ['plain', 3, 98, 12288],
  ]);
  assert.equal(r.layout?.totalBlocks, 101);
});

test('wrong-uniaddr: exactly one problem, "slot 1 (layer2.erofs): uniaddr 92, expected 91", repairable', () => {
  const r = validateFlatLayout(fixture('wrong-uniaddr', 'fsmeta.erofs'), layersOf('wrong-uniaddr'));
  assert.deepEqual(codes(r.problems), ['slot-uniaddr']);
  assert.match(r.problems[0].message, /wrong-uniaddr\/fsmeta\.erofs: slot 1 \(layer2\.erofs\): uniaddr 92, expected 91$/);
  assert.equal(r.repairable, true);
});

test('repair(wrong-uniaddr) is byte-identical to basic/fsmeta.erofs, idempotent, input untouched', async () => {
  await withTempDir((dir) => {
    const input = fixture('wrong-uniaddr', 'fsmeta.erofs');
    const before = sha(input);
    const first = repairFlatLayout(input, layersOf('wrong-uniaddr'), dir);
    assert.deepEqual(fs.readFileSync(first.path), fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
    assert.equal(path.basename(first.path), `${sha(fixture('basic', 'fsmeta.erofs'))}.erofs`);
    assert.equal(first.written, true);
    const second = repairFlatLayout(input, layersOf('wrong-uniaddr'), dir);
    assert.equal(second.path, first.path);
    assert.equal(second.written, false);
    assert.equal(sha(input), before);
    assert.deepEqual(fs.readdirSync(dir), [path.basename(first.path)]); // no temp files left
  });
});

test('mixedbs: slots repaired into fsmeta-block units 48/56/8 at 5/53/109 (= fsmeta.repaired.erofs)', async () => {
  const r = validateFlatLayout(fixture('mixedbs', 'fsmeta.erofs'), layersOf('mixedbs'));
  assert.deepEqual(r.layout?.blobs.map((b) => [b.blocks, b.uniaddr]), [[48, 5], [56, 53], [8, 109]]);
  assert.deepEqual(codes(r.problems).sort(), ['slot-blocks', 'slot-blocks', 'slot-uniaddr', 'slot-uniaddr']);
  assert.equal(r.repairable, true);
  await withTempDir((dir) => {
    const out = repairFlatLayout(fixture('mixedbs', 'fsmeta.erofs'), layersOf('mixedbs'), dir);
    assert.deepEqual(fs.readFileSync(out.path), fs.readFileSync(fixture('mixedbs', 'fsmeta.repaired.erofs')));
  });
});

test('mixedbs-bottom512: refused, a layer block size smaller than the fsmeta cannot be repaired', async () => {
  const r = validateFlatLayout(fixture('mixedbs-bottom512', 'fsmeta.erofs'), layersOf('mixedbs-bottom512'));
  assert.deepEqual(codes(r.problems), ['layer-block-size-smaller']);
  assert.equal(r.repairable, false);
  await withTempDir((dir) => {
    const err = refusal(() => repairFlatLayout(fixture('mixedbs-bottom512', 'fsmeta.erofs'), layersOf('mixedbs-bottom512'), dir));
    assert.equal(err.code, 'layer-block-size-smaller');
    assert.match(err.message, /mixedbs-bottom512\/layer1\.erofs: block size 512 is smaller than the fsmeta's 4096/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

test('taridx: tar-index layers recognised; uniaddr = file start + own index blocks (variant b)', () => {
  const r = validateFlatLayout(fixture('taridx', 'fsmeta.erofs'), layersOf('taridx'));
  assert.deepEqual(r.layout?.blobs.map((b) => [b.kind, b.dataOffset, b.blocks, b.uniaddr, b.regionBytes / 512]), [
    ['tar-index', 5120, 671, 11 + 10, 10 + 671],
    ['tar-index', 2560, 13, 11 + 681 + 5, 5 + 13],
    ['tar-index', 2560, 20, 11 + 681 + 18 + 5, 5 + 20],
    ['tar-index', 2048, 14, 11 + 681 + 18 + 25 + 4, 4 + 14],
  ]);
  // slot blocks (tar data) are right as written; only uniaddr moves
  assert.deepEqual(codes(r.problems), ['slot-uniaddr', 'slot-uniaddr', 'slot-uniaddr', 'slot-uniaddr']);
  assert.equal(r.repairable, true);
});

test('single: a plain layer alone is a valid disk; a tar-index layer alone covers index + tar', () => {
  const single = validateSingleImage(fixture('single', 'layer1.erofs'));
  assert.deepEqual(single.problems, []);
  assert.equal(single.layout?.primaryBlocks, 8);
  const tar = validateSingleImage(fixture('taridx', 'layer2.erofs'));
  assert.deepEqual(tar.problems, []);
  assert.equal(tar.layout?.primaryBlocks, 18);
  const fsmetaAlone = validateSingleImage(fixture('basic', 'fsmeta.erofs'));
  assert.deepEqual(codes(fsmetaAlone.problems), ['layer-has-devices']);
});

const badCases: [string, string[], RegExp][] = [
  ['truncated-sb.erofs', ['truncated-superblock'], /1100 bytes, too short for an EROFS superblock/],
  ['truncated-devtable.erofs', ['checksum-window-truncated', 'file-short', 'truncated-device-table'], /device table of 4 slots needs bytes 1152\.\.1664, but the image has 1536/],
  ['bad-magic.erofs', ['bad-magic'], /magic 0xe0f5e1e3/],
  ['bad-checksum.erofs', ['bad-checksum', 'slot-uniaddr'], /checksum 0x64d4e53c does not match the content \(0x1bc52bad\)/],
  ['extra-devices-3.erofs', ['device-count-mismatch'], /device table has 3 slots, but 4 layer files were given/],
  ['extra-devices-5.erofs', ['device-table-overlaps-metadata', 'device-count-mismatch'], /device table has 5 slots, but 4 layer files were given/],
  ['48bit.erofs', ['unsupported-feature'], /incompat feature 48BIT/],
];

for (const [name, expected, message] of badCases) {
  test(`bad-inputs/${name}: refused with ${expected.join(', ')}`, () => {
    const r = validateFlatLayout(fixture('bad-inputs', name), basicLayers);
    assert.deepEqual(codes(r.problems), expected);
    assert.equal(r.repairable, false);
    assert.ok(r.problems.some((p) => message.test(p.message)), r.problems.map((p) => p.message).join(' | '));
    for (const p of r.problems) assert.ok(p.message.startsWith(fixture('bad-inputs', name)), p.message);
  });
}

test('basic fsmeta with only 3 layers: device-count-mismatch', () => {
  const r = validateFlatLayout(fixture('basic', 'fsmeta.erofs'), basicLayers.slice(0, 3));
  assert.deepEqual(codes(r.problems), ['device-count-mismatch']);
});

test('layers in the wrong order: tags name the culprit, no repair', () => {
  const swapped = [basicLayers[1], basicLayers[0], basicLayers[2], basicLayers[3]];
  const r = validateFlatLayout(fixture('basic', 'fsmeta.erofs'), swapped);
  assert.ok(codes(r.problems).includes('slot-tag-mismatch'));
  assert.equal(r.repairable, false);
  assert.match(r.problems.find((p) => p.code === 'slot-tag-mismatch')!.message, /which is layer 2's \(layer1\.erofs\): layers given in the wrong order\?/);
});

function patchedFsmeta(dir: string, edit: (v: DataView, b: Uint8Array) => void, crc = true): string {
  const bytes = Uint8Array.from(fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
  edit(new DataView(bytes.buffer), bytes);
  if (crc) writeSuperblockChecksum(bytes, 4096);
  const file = path.join(dir, 'fsmeta.erofs');
  fs.writeFileSync(file, bytes);
  return file;
}

test('an empty tag is repaired to the layer UUID hex', async () => {
  await withTempDir((dir) => {
    const file = patchedFsmeta(dir, (_v, b) => b.fill(0, 1152 + 128 * 2, 1152 + 128 * 2 + 64));
    const r = validateFlatLayout(file, basicLayers);
    assert.deepEqual(codes(r.problems), ['slot-tag-empty']);
    const out = repairFlatLayout(file, basicLayers, path.join(dir, 'state'));
    assert.deepEqual(fs.readFileSync(out.path), fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
  });
});

test('a layer shorter than its extent is refused (plain: file-short; tar-index cut in its tar: layer-short)', async () => {
  await withTempDir((dir) => {
    const short = path.join(dir, 'layer4.erofs');
    fs.writeFileSync(short, fs.readFileSync(basicLayers[3]).subarray(0, 8192));
    const r = validateFlatLayout(fixture('basic', 'fsmeta.erofs'), [...basicLayers.slice(0, 3), short]);
    assert.deepEqual(codes(r.problems), ['file-short']);
    assert.match(r.problems[0].message, /layer4\.erofs: 8192 bytes, but the superblock says 3 blocks of 4096 \(12288 bytes\)$/);
    assert.equal(r.repairable, false);
    const tarLayers = layersOf('taridx');
    const cut = path.join(dir, 'tar4.erofs');
    fs.writeFileSync(cut, fs.readFileSync(tarLayers[3]).subarray(0, 4096)); // index 2048 B + part of the tar
    const t = validateFlatLayout(fixture('taridx', 'fsmeta.erofs'), [...tarLayers.slice(0, 3), cut]);
    assert.deepEqual(codes(t.problems), ['layer-short', 'slot-uniaddr', 'slot-uniaddr', 'slot-uniaddr', 'slot-uniaddr']);
    assert.equal(t.repairable, false); // the slots alone would be repairable; the short layer is not
    assert.match(t.problems[0].message, /tar4\.erofs: 4096 bytes, shorter than its 9216-byte extent$/);
  });
});

test('a layer with an appended tail (dm-verity style) keeps its metadata length', async () => {
  await withTempDir((dir) => {
    const long = path.join(dir, 'layer4.erofs');
    fs.writeFileSync(long, Buffer.concat([fs.readFileSync(basicLayers[3]), Buffer.alloc(4096, 0xaa)]));
    const disk = prepareFlatDisk({ fsmeta: fixture('basic', 'fsmeta.erofs'), layers: [...basicLayers.slice(0, 3), long] }, { repairDir: dir });
    assert.equal(disk.extents[4].sectors, 24);
  });
});

test('prepareFlatDisk: resolves symlinks, absolute paths, fsmeta first, offset 0', async () => {
  await withTempDir((dir) => {
    const link = path.join(dir, 'top.erofs');
    fs.symlinkSync(basicLayers[3], link);
    const disk = prepareFlatDisk({ fsmeta: fixture('basic', 'fsmeta.erofs'), layers: [...basicLayers.slice(0, 3), link] }, { repairDir: path.join(dir, 'state') });
    assert.deepEqual(disk.extents, [
      { path: fs.realpathSync(fixture('basic', 'fsmeta.erofs')), sectors: 16, offset: 0 },
      ...basicLayers.map((l, i) => ({ path: fs.realpathSync(l), sectors: [712, 32, 24, 24][i], offset: 0 })),
    ]);
    assert.equal(disk.repaired, false);
    assert.equal(fs.existsSync(path.join(dir, 'state')), false); // nothing written when nothing to repair
  });
});

test('prepareFlatDisk refuses missing files, hostile names, several layers without fsmeta', async () => {
  await withTempDir((dir) => {
    const missing = refusal(() => prepareFlatDisk({ fsmeta: fixture('basic', 'fsmeta.erofs'), layers: [...basicLayers.slice(0, 3), path.join(dir, 'nope.erofs')] }, { repairDir: dir }));
    assert.equal(missing.code, 'missing-file');
    assert.match(missing.message, /nope\.erofs": layer 4: no such file/);
    const spaced = path.join(dir, 'my layer.erofs');
    fs.copyFileSync(basicLayers[0], spaced);
    assert.equal(refusal(() => prepareFlatDisk({ layers: [spaced] }, { repairDir: dir })).code, 'path-has-whitespace');
    const hint = path.join(dir, 'parentFileNameHint.erofs');
    fs.copyFileSync(basicLayers[0], hint);
    assert.equal(refusal(() => prepareFlatDisk({ layers: [hint] }, { repairDir: dir })).code, 'path-has-parent-hint');
    const long = path.join(dir, 'x'.repeat(200), 'y'.repeat(200), 'z'.repeat(100) + '.erofs');
    fs.mkdirSync(path.dirname(long), { recursive: true });
    fs.copyFileSync(basicLayers[0], long);
    assert.equal(refusal(() => prepareFlatDisk({ layers: [long] }, { repairDir: dir })).code, 'path-too-long');
    assert.equal(refusal(() => prepareFlatDisk({ layers: basicLayers }, { repairDir: dir })).code, 'fsmeta-required');
    // a symlink whose *target* is hostile is refused; its own name does not matter
    const badTarget = path.join(dir, 'evil"target.erofs');
    fs.copyFileSync(basicLayers[0], badTarget);
    const niceLink = path.join(dir, 'nice.erofs');
    fs.symlinkSync(badTarget, niceLink);
    const viaLink = refusal(() => prepareFlatDisk({ layers: [niceLink] }, { repairDir: dir }));
    assert.equal(viaLink.code, 'path-has-quote');
    assert.match(viaLink.message, /resolved from/);
  });
});

test('prepareFlatDisk repairs into <repairDir>/<sha256>.erofs and reports what it fixed', async () => {
  await withTempDir((dir) => {
    const disk = prepareFlatDisk({ fsmeta: fixture('wrong-uniaddr', 'fsmeta.erofs'), layers: layersOf('wrong-uniaddr') }, { repairDir: path.join(dir, 'state') });
    assert.equal(disk.repaired, true);
    assert.equal(disk.fsmetaPath, path.join(fs.realpathSync(dir), 'state', `${sha(fixture('basic', 'fsmeta.erofs'))}.erofs`));
    assert.equal(disk.extents[0].path, disk.fsmetaPath);
    assert.deepEqual(codes(disk.problems), ['slot-uniaddr']);
  });
});
