/**
 * Why the descriptor must only ever be attached read-only (go-shim-compat.md,
 * "QEMU" pitfalls): QEMU's vmdk driver opened read-write writes guest writes
 * straight into the layer blobs and rewrites the descriptor itself (new CID,
 * padded to 512 bytes). Opened read-only it refuses the write. Uses copies.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, beforeEach, afterEach } from 'node:test';
import { fixture } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import { writeDescriptor } from './vm-harness';

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('QEMU and a flat vmdk descriptor opened read-write', () => {
  let dir: string;
  let descriptor: string;
  beforeEach(() => {
    dir = fs.realpathSync(makeTempDir('erofs-vmdk-qrw-'));
    for (const f of ['fsmeta.erofs', 'layer1.erofs', 'layer2.erofs', 'layer3.erofs', 'layer4.erofs']) {
      fs.copyFileSync(fixture('basic', f), path.join(dir, f));
    }
    descriptor = path.join(dir, 'd.vmdk');
    const layers = [1, 2, 3, 4].map((n) => path.join(dir, `layer${n}.erofs`));
    writeDescriptor({ fsmeta: path.join(dir, 'fsmeta.erofs'), layers }, descriptor);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes into the layer blob and rewrites the descriptor CID', () => {
    const layerBefore = sha(path.join(dir, 'layer1.erofs'));
    const cidBefore = /^CID=(\w+)$/m.exec(fs.readFileSync(descriptor, 'latin1'))![1];
    // Byte 8192 of the disk is the first byte of layer1 (fsmeta is 2 blocks).
    execFileSync('qemu-io', ['-f', 'vmdk', '-c', 'write -P 0xab 8192 512', descriptor], { stdio: 'ignore' });
    assert.notEqual(sha(path.join(dir, 'layer1.erofs')), layerBefore, 'the layer blob was modified');
    const cidAfter = /^CID=(\w+)$/m.exec(fs.readFileSync(descriptor, 'latin1'))![1];
    assert.notEqual(cidAfter, cidBefore, 'QEMU rewrote the CID');
  });

  it('refuses the write when opened read-only, and nothing changes', () => {
    const before = [descriptor, path.join(dir, 'layer1.erofs')].map(sha);
    const r = spawnSync('qemu-io', ['-r', '-f', 'vmdk', '-c', 'write -P 0xab 8192 512', descriptor], { encoding: 'utf8' });
    assert.match(r.stdout + r.stderr, /read-only/);
    assert.deepEqual([descriptor, path.join(dir, 'layer1.erofs')].map(sha), before);
  });
});
