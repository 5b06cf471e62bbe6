import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  computeSuperblockChecksum,
  crc32c,
  checksumWindowEnd,
  ErofsFormatError,
  parseSuperblock,
  verifySuperblockChecksum,
  writeSuperblockChecksum,
} from '../../src/erofs';
import { fixture } from '../support/fixtures';

test('crc32c is the raw EROFS register (seed ~0, no final xor)', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0x1cf96d7c);
  // standard CRC-32C = raw ^ 0xffffffff
  assert.equal((crc32c(Buffer.from('123456789')) ^ 0xffffffff) >>> 0, 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0xffffffff);
  // chaining equals one pass
  const data = Buffer.from('hello, erofs');
  assert.equal(crc32c(data.subarray(5), crc32c(data.subarray(0, 5))), crc32c(data));
});

test('checksum window: blocksize-1024 from byte 1024, or the whole block for small blocks', () => {
  assert.equal(checksumWindowEnd(4096), 4096);
  assert.equal(checksumWindowEnd(512), 1536);
  assert.equal(checksumWindowEnd(1024), 2048);
  assert.equal(checksumWindowEnd(2048), 2048);
});

const stored: [string, number][] = [
  ['basic/fsmeta.erofs', 0x64d4e53c],
  ['taridx/fsmeta.erofs', 0xfa99c42c],
  ['mixedbs/fsmeta.erofs', 0x751e1858],
  ['mixedbs/fsmeta.repaired.erofs', 0x579b8ecc],
  ['taridx/layer1.erofs', 0xa8b279dc],
];

for (const [name, crc] of stored) {
  test(`recomputes the stored checksum of ${name} (0x${crc.toString(16)})`, () => {
    const bytes = fs.readFileSync(fixture(name));
    const sb = parseSuperblock(bytes);
    assert.equal(sb.checksum, crc);
    assert.equal(computeSuperblockChecksum(bytes, sb.blockSize), crc);
    assert.deepEqual(verifySuperblockChecksum(bytes, sb.blockSize), { present: true, stored: crc, computed: crc, ok: true });
  });
}

test('every basic layer verifies', () => {
  for (const n of [1, 2, 3, 4]) {
    const bytes = fs.readFileSync(fixture('basic', `layer${n}.erofs`));
    assert.equal(verifySuperblockChecksum(bytes, parseSuperblock(bytes).blockSize).ok, true, `layer${n}`);
  }
});

test('bad-checksum.erofs: stored 0x64d4e53c, content says 0x1bc52bad', () => {
  const bytes = fs.readFileSync(fixture('bad-inputs', 'bad-checksum.erofs'));
  const status = verifySuperblockChecksum(bytes, 4096);
  assert.equal(status.stored, 0x64d4e53c);
  assert.equal(status.computed, 0x1bc52bad);
  assert.equal(status.ok, false);
});

test('writeSuperblockChecksum restores a valid CRC after a slot edit (wrong-uniaddr recipe)', () => {
  const bytes = Uint8Array.from(fs.readFileSync(fixture('basic', 'fsmeta.erofs')));
  new DataView(bytes.buffer).setUint32(1152 + 128 + 68, 92, true); // slot1.uniaddr 91 -> 92
  assert.equal(writeSuperblockChecksum(bytes, 4096), 0x1bc52bad);
  assert.deepEqual(Buffer.from(bytes), fs.readFileSync(fixture('wrong-uniaddr', 'fsmeta.erofs')));
});

test('a buffer ending inside the window cannot be verified: typed error', () => {
  const bytes = fs.readFileSync(fixture('bad-inputs', 'truncated-devtable.erofs'));
  assert.throws(() => computeSuperblockChecksum(bytes, 4096, 'x.erofs'), (err: unknown) => {
    assert.ok(err instanceof ErofsFormatError);
    assert.equal(err.code, 'checksum-window-truncated');
    assert.match(err.message, /^x\.erofs: 1536 bytes/);
    return true;
  });
});
