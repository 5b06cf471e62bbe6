import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { ErofsFormatError, FEATURE_COMPAT, FEATURE_INCOMPAT, featureNames, parseDeviceTable, parseSuperblock } from '../../src/erofs';
import { fixture } from '../support/fixtures';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ErofsFormatError, `not an ErofsFormatError: ${String(err)}`);
    return err.code;
  }
  return 'no error';
}

test('basic/fsmeta.erofs superblock matches sb.txt', () => {
  const bytes = fs.readFileSync(fixture('basic', 'fsmeta.erofs'));
  const sb = parseSuperblock(bytes);
  assert.equal(sb.magic, 0xe0f5e1e2);
  assert.equal(sb.checksum, 0x64d4e53c);
  assert.equal(sb.featureCompat, 0x7);
  assert.deepEqual(featureNames(sb.featureCompat, FEATURE_COMPAT), ['SB_CHKSUM', 'MTIME', 'XATTR_FILTER']);
  assert.equal(sb.featureIncompat, FEATURE_INCOMPAT.DEVICE_TABLE);
  assert.equal(sb.blockSizeBits, 12);
  assert.equal(sb.blockSize, 4096);
  assert.equal(sb.rootNid, 52);
  assert.equal(sb.inodes, 32n);
  assert.equal(sb.epoch, 0n);
  assert.equal(sb.buildTime, 0);
  assert.equal(sb.blocks, 2);
  assert.equal(sb.metaBlkAddr, 0);
  assert.equal(sb.xattrBlkAddr, 0);
  assert.equal(sb.uuid, '2efe73ac-c33c-56c3-a55a-8a103bc514b6');
  assert.equal(sb.volumeName, '');
  assert.equal(sb.extraDevices, 4);
  assert.equal(sb.devtSlotOff, 9);
  assert.equal(sb.dirBlkBits, 0);
  assert.equal(sb.hasDeviceTable, true);
});

test('basic/fsmeta.erofs device table: tags, blocks, uniaddr from the README', () => {
  const bytes = fs.readFileSync(fixture('basic', 'fsmeta.erofs'));
  const slots = parseDeviceTable(bytes, parseSuperblock(bytes));
  assert.deepEqual(
    slots.map((s) => [s.index, s.tag, s.blocks, s.uniaddr, s.offset]),
    [
      [0, '5cc5c19d8f0251b38a64597ab7973617', 89, 2, 1152],
      [1, 'a5b9305af38e55839e1d1fcf5146e492', 4, 91, 1280],
      [2, 'd88c85ccc80458ee9eb129aae0c5f1bd', 3, 95, 1408],
      [3, '8361683993e85a8496d1dbac68dd5df0', 3, 98, 1536],
    ],
  );
});

test('taridx: 512-byte fsmeta with the table at 1536; a tar-index layer has one untagged slot', () => {
  const fsmeta = fs.readFileSync(fixture('taridx', 'fsmeta.erofs'));
  const sb = parseSuperblock(fsmeta);
  assert.equal(sb.blockSize, 512);
  assert.equal(sb.devtSlotOff, 12);
  assert.deepEqual(parseDeviceTable(fsmeta, sb).map((s) => [s.blocks, s.uniaddr]), [[671, 11], [13, 682], [20, 695], [14, 715]]);
  const layer = fs.readFileSync(fixture('taridx', 'layer1.erofs'));
  const lsb = parseSuperblock(layer);
  assert.equal(lsb.extraDevices, 1);
  assert.deepEqual(parseDeviceTable(layer, lsb).map((s) => [s.tag, s.blocks, s.uniaddr]), [['', 671, 10]]);
});

test('a plain layer has no device table', () => {
  const bytes = fs.readFileSync(fixture('basic', 'layer2.erofs'));
  const sb = parseSuperblock(bytes);
  assert.equal(sb.hasDeviceTable, false);
  assert.equal(sb.rootNid, 36);
  assert.deepEqual(parseDeviceTable(bytes, sb), []);
});

test('bad inputs: typed errors with precise codes', () => {
  const read = (n: string) => fs.readFileSync(fixture('bad-inputs', n));
  assert.equal(codeOf(() => parseSuperblock(read('truncated-sb.erofs'))), 'truncated-superblock');
  assert.equal(codeOf(() => parseSuperblock(read('bad-magic.erofs'))), 'bad-magic');
  const trunc = read('truncated-devtable.erofs');
  assert.equal(codeOf(() => parseDeviceTable(trunc, parseSuperblock(trunc))), 'truncated-device-table');
  const bad = Uint8Array.from(fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
  bad[1024 + 12] = 13;
  assert.equal(codeOf(() => parseSuperblock(bad)), 'bad-block-size');
  const overlap = Uint8Array.from(fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
  new DataView(overlap.buffer).setUint16(1024 + 88, 8, true); // table at 1024: inside the superblock
  assert.equal(codeOf(() => parseDeviceTable(overlap, parseSuperblock(overlap))), 'bad-device-table-offset');
});

test('the error message names the file', () => {
  assert.throws(() => parseSuperblock(new Uint8Array(10), '/x/fsmeta.erofs'), /^ErofsFormatError: \/x\/fsmeta\.erofs: 10 bytes, too short/);
});

test('48BIT: the slot hi halves are read, and parsing still works (refusal is policy)', () => {
  const bytes = Uint8Array.from(fs.readFileSync(fixture('bad-inputs', '48bit.erofs')));
  const sb = parseSuperblock(bytes);
  assert.equal(sb.featureIncompat & FEATURE_INCOMPAT.BLOCKS_48BIT, FEATURE_INCOMPAT.BLOCKS_48BIT);
  assert.equal(sb.rootNid, 52); // rootnid_8b is 0: falls back to rootnid_2b, like the kernel
  new DataView(bytes.buffer).setUint16(1152 + 74, 1, true);
  assert.equal(parseDeviceTable(bytes, sb)[0].uniaddr, 2 + 2 ** 32);
});
