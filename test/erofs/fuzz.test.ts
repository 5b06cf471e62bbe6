/**
 * Property test: thousands of random mutations of real fixture superblocks and
 * device tables. The parsers and validators must only ever throw
 * ErofsFormatError, must terminate, and must never read outside the buffer —
 * every input is an exact-length buffer (a DataView over it throws RangeError
 * on any out-of-range read) and the same bytes as a subarray with guard bytes
 * on both sides must give the identical result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import {
  ErofsFormatError,
  checkImageHeader,
  parseDeviceTable,
  parseSuperblock,
  repairedFsmetaBytes,
  validateFlatLayout,
  validateSingleImage,
  type ImageInput,
} from '../../src/erofs';
import { describeImage } from '../../src/erofs/describe';
import { fixture } from '../support/fixtures';
import { mulberry32 } from '../support/prng';


const SEEDS = [
  'basic/fsmeta.erofs',
  'taridx/fsmeta.erofs',
  'mixedbs/fsmeta.erofs',
  'mixedbs-bottom512/fsmeta.erofs',
  'basic/layer2.erofs',
  'taridx/layer2.erofs',
  'bad-inputs/48bit.erofs',
  'bad-inputs/extra-devices-5.erofs',
].map((n) => ({ name: n, bytes: fs.readFileSync(fixture(n)).subarray(0, 8192) }));

const layers = (c: string): ImageInput[] =>
  fs.readFileSync(fixture(c, 'layers.txt'), 'utf8').trim().split('\n').map((l) => {
    const head = fs.readFileSync(fixture(c, l.trim()));
    return { file: l.trim(), size: head.length, head: Uint8Array.from(head) };
  });
const LAYER_SETS = [layers('basic'), layers('taridx'), layers('mixedbs')];

// Field offsets (absolute) worth hitting with extreme values: u8/u16/u32 fields of
// the superblock and of the first slots.
const FIELDS: [number, 1 | 2 | 4][] = [
  [1024, 4], [1028, 4], [1032, 4], [1036, 1], [1037, 1], [1038, 2], [1060, 4], [1064, 4], [1068, 4],
  [1104, 4], [1110, 2], [1112, 2], [1114, 1], [1136, 8 as 4], [1152 + 64, 4], [1152 + 68, 4], [1152 + 72, 2],
  [1152 + 74, 2], [1280 + 64, 4], [1280 + 68, 4], [1536 + 64, 4], [1536 + 68, 4],
];
const EXTREMES = [0, 1, 2, 8, 9, 12, 13, 31, 32, 127, 128, 255, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0xffffffff];

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  let b = Uint8Array.from(src);
  const steps = 1 + Math.floor(r() * 4);
  for (let s = 0; s < steps; s++) {
    const kind = r();
    if (kind < 0.35) {
      // random bytes in the superblock / device-table area
      const at = 1024 + Math.floor(r() * Math.min(1024, Math.max(1, b.length - 1024)));
      if (at < b.length) b[at] = Math.floor(r() * 256);
    } else if (kind < 0.75) {
      const [off, size] = FIELDS[Math.floor(r() * FIELDS.length)];
      if (off + size <= b.length) {
        const v = new DataView(b.buffer);
        const value = r() < 0.7 ? EXTREMES[Math.floor(r() * EXTREMES.length)] : Math.floor(r() * 2 ** 32);
        if (size === 1) v.setUint8(off, value & 0xff);
        else if (size === 2) v.setUint16(off, value & 0xffff, true);
        else v.setUint32(off, value >>> 0, true);
      }
    } else if (kind < 0.9) {
      b = b.slice(0, Math.floor(r() * b.length)); // truncate anywhere
    } else {
      // flip incompat bits (48BIT/METABOX/DEVICE_TABLE/unknown)
      if (b.length >= 1108) b[1104 + Math.floor(r() * 2)] ^= 1 << Math.floor(r() * 8);
    }
  }
  return b;
}

/** Runs every entry point; returns a comparable summary or the error code. */
function exercise(bytes: Uint8Array, layerSet: ImageInput[]): unknown {
  const out: unknown[] = [];
  const image: ImageInput = { file: 'fuzz.erofs', size: bytes.length, head: bytes };
  for (const fn of [
    () => {
      const sb = parseSuperblock(bytes);
      return [sb.blockSize, sb.extraDevices, parseDeviceTable(bytes, sb).map((s) => [s.tag, s.blocks, s.uniaddr])];
    },
    () => {
      const h = checkImageHeader(image);
      return [h.fatal, h.problems.map((p) => p.code)];
    },
    () => {
      const r = validateFlatLayout(image, layerSet);
      if (r.repairable) {
        // property: a repair of a repairable report validates clean
        const fixed = repairedFsmetaBytes(bytes, r);
        const again = validateFlatLayout({ file: 'fixed.erofs', size: fixed.length, head: fixed }, layerSet);
        assert.deepEqual(again.problems, [], 'repaired copy must validate clean');
      }
      if (r.problems.length === 0) {
        // property: "clean" means every slot equals the computed layout
        r.layout!.blobs.forEach((b, i) => {
          assert.equal(r.slots[i].uniaddr, b.uniaddr);
          assert.equal(r.slots[i].blocks, b.blocks);
        });
      }
      return [r.repairable, r.problems.map((p) => p.code)];
    },
    () => validateSingleImage(image).problems.map((p) => p.code),
    () => describeImage(image).checksum,
  ]) {
    try {
      out.push(fn());
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.ok(err instanceof ErofsFormatError, `threw ${String((err as Error)?.stack ?? err)}`);
      out.push(`E:${err.code}`);
    }
  }
  return out;
}

/** The same bytes inside a larger buffer, with guard bytes that would change results if read. */
function guarded(bytes: Uint8Array): Uint8Array {
  const big = new Uint8Array(bytes.length + 8192).fill(0xa5);
  big.set(bytes, 4096);
  return big.subarray(4096, 4096 + bytes.length);
}

test('fuzz: 6000 mutated superblocks/device tables only ever give ErofsFormatError, in bounds', () => {
  const r = mulberry32(0x5eed1e);
  let refused = 0;
  let clean = 0;
  let repairable = 0;
  for (let i = 0; i < 6000; i++) {
    const seed = SEEDS[i % SEEDS.length];
    const mutated = mutate(seed.bytes, r);
    const exact = new Uint8Array(new ArrayBuffer(mutated.length));
    exact.set(mutated);
    const layerSet = LAYER_SETS[i % LAYER_SETS.length];
    const a = exercise(exact, layerSet);
    const b = exercise(guarded(mutated), layerSet);
    assert.ok(isDeepStrictEqual(a, b), `case ${i} (${seed.name}): result depends on bytes outside the buffer`);
    const summary = JSON.stringify(a);
    if ((a as unknown[])[2] !== undefined && Array.isArray((a as unknown[])[2]) && ((a as unknown[][])[2][0] as boolean)) repairable++;
    if (summary.includes('"E:')) refused++;
    else clean++;
  }
  // the mutations must exercise both outcomes, or the test proves nothing
  assert.ok(refused > 100, `only ${refused} refusals`);
  assert.ok(clean > 100, `only ${clean} parses`);
  assert.ok(repairable > 50, `only ${repairable} repairable layouts: the repair property was barely exercised`);
});

test('fuzz: extreme extra_devices/devt_slotoff on every seed terminate with a typed result', () => {
  for (const seed of SEEDS) {
    for (const devices of [0, 1, 4, 32, 1000, 0xffff]) {
      for (const slotoff of [0, 8, 9, 12, 32, 64, 0xffff]) {
        const b = Uint8Array.from(seed.bytes);
        if (b.length < 1152) continue;
        const v = new DataView(b.buffer);
        v.setUint16(1024 + 86, devices, true);
        v.setUint16(1024 + 88, slotoff, true);
        v.setUint32(1024 + 80, v.getUint32(1024 + 80, true) | 0x8, true);
        exercise(b, LAYER_SETS[0]);
      }
    }
  }
});
