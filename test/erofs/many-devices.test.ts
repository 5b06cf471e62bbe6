import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REPAIRABLE_CODES, checkImageHeader, parseSuperblock, validateFlatLayout, type ImageInput } from '../../src/erofs';
import { BS, fsmetaBytes, layerHead } from './synthetic';

function setup(n: number): { fsmeta: Uint8Array; blobs: ImageInput[]; sizes: number[] } {
  const sizes = Array.from({ length: n }, (_, i) => 1 + ((i * 7) % 13));
  return {
    fsmeta: fsmetaBytes(sizes),
    sizes,
    blobs: sizes.map((s, i) => ({ file: `/l/${i}.erofs`, size: s * BS, head: layerHead(i, s) })),
  };
}

test('40 devices: table at byte 4096 (outside the CRC window) still validates clean', () => {
  const { fsmeta, blobs } = setup(40);
  assert.equal(parseSuperblock(fsmeta).devtSlotOff, 32);
  const r = validateFlatLayout({ file: 'fsmeta', size: fsmeta.length, head: fsmeta }, blobs);
  assert.deepEqual(r.problems, []);
});

test('40 devices: a wrong slot outside the CRC window is caught although the CRC is valid', () => {
  const { fsmeta, blobs } = setup(40);
  new DataView(fsmeta.buffer).setUint32(4096 + 30 * 128 + 68, 12345, true); // slot 30 uniaddr, CRC untouched
  assert.deepEqual(checkImageHeader({ file: 'fsmeta', size: fsmeta.length, head: fsmeta }).problems, []);
  const r = validateFlatLayout({ file: 'fsmeta', size: fsmeta.length, head: fsmeta }, blobs);
  assert.deepEqual(r.problems.map((p) => p.code), ['slot-uniaddr']);
  assert.match(r.problems[0].message, /slot 30 \(30\.erofs\): uniaddr 12345, expected \d+/);
  assert.ok(REPAIRABLE_CODES.has('slot-uniaddr'));
});

test('1000 devices validate clean and are laid out back to back', () => {
  const { fsmeta, blobs } = setup(1000);
  const r = validateFlatLayout({ file: 'fsmeta', size: fsmeta.length, head: fsmeta }, blobs);
  assert.deepEqual(r.problems, []);
  assert.equal(r.layout!.blobs.length, 1000);
  assert.equal(r.layout!.blobs[999].uniaddr, r.layout!.blobs[998].uniaddr + r.layout!.blobs[998].blocks);
});

test('header policy: dirblkbits, METABOX, unknown incompat bits are findings', () => {
  const base = fsmetaBytes([1]);
  const cases: [number, number, string][] = [
    [1024 + 90, 1, 'bad-dirblkbits'],
    [1024 + 81, 0x01, 'unsupported-feature'], // 0x100 METABOX
    [1024 + 82, 0x01, 'unknown-feature'], // 0x10000
  ];
  for (const [offset, value, code] of cases) {
    const b = Uint8Array.from(base);
    b[offset] = value;
    // the edit leaves the CRC stale, so the checksum finding comes too: both are reported
    const codes = checkImageHeader({ file: 'x', size: b.length, head: b }).problems.map((p) => p.code);
    assert.ok(codes.includes(code), `${code}: ${codes.join(',')}`);
    assert.ok(codes.includes('bad-checksum'));
  }
});
