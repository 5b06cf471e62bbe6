/** Paged pread access: exact bytes anywhere (also across cache pages), typed errors outside the file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { withTempDir } from '../support/kernel-mounts';
import { ImageFile } from '../../src/erofs/reader';
import { ErofsFormatError } from '../../src/erofs/errors';

test('reads return the file bytes at any offset, within and across cache pages', async () => {
  await withTempDir((dir) => {
    const data = randomBytes(200_000);
    fs.writeFileSync(`${dir}/f`, data);
    const file = ImageFile.open(`${dir}/f`);
    try {
      for (const [offset, length] of [[0, 1], [16380, 10], [16384, 16384], [1000, 100_000], [199_990, 10], [200_000, 0]]) {
        assert.ok(file.read(offset, length, 'test').equals(data.subarray(offset, offset + length)), `${offset}+${length}`);
        const at = file.locate(offset, length, 'test');
        assert.ok(file.located.subarray(at, at + length).equals(data.subarray(offset, offset + length)));
      }
      for (const [offset, length] of [[199_999, 2], [-1, 1], [2 ** 53, 1], [0, 200_001]]) {
        assert.throws(() => file.read(offset, length, 'test'), (e: unknown) => e instanceof ErofsFormatError && e.code === 'out-of-bounds');
      }
    } finally {
      file.close();
    }
  });
});

test('only regular files are opened', () => {
  assert.throws(() => ImageFile.open('/dev/null'), (e: unknown) => e instanceof ErofsFormatError && e.code === 'not-a-file');
});
