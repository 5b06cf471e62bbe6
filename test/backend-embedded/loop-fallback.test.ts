/**
 * Legacy style without python3 (no way to call mount(2) for a file-backed
 * mount): committed layers are mounted through a loop device instead, and
 * detaching them on Remove frees the loop device. Runs in its own process
 * (node --test runs each file separately), with a PATH that has everything
 * the backend needs except python3.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ctx, withBackend } from './helpers';

function which(cmd: string): string {
  return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
}

test('legacy style falls back to a loop device when a file-backed mount cannot be made', async () => {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'nopython-'));
  const saved = process.env.PATH;
  try {
    for (const cmd of ['mount', 'umount', 'losetup', 'mkfs.erofs']) fs.symlinkSync(which(cmd), path.join(bin, cmd));
    process.env.PATH = bin;
    await withBackend({ mountStyle: 'legacy' }, async ({ backend, root }) => {
      const [m] = await backend.prepare(ctx, 'a', '', {});
      fs.writeFileSync(path.join(m.source, 'f'), 'via loop\n');
      await backend.commit(ctx, 'c', 'a', {}, '');
      const fsDir = path.join(root, 'snapshots', '1', 'fs');
      const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === fsDir);
      assert.ok(line, 'layer mounted on fs/');
      assert.match(line, / - erofs \/dev\/loop\d+ /, 'through a loop device');
      const loop = / - erofs (\/dev\/loop\d+) /.exec(line)![1];
      assert.equal(fs.readFileSync(path.join(fsDir, 'f'), 'utf8'), 'via loop\n');
      await backend.remove(ctx, 'c');
      // util-linux sets autoclear on loop devices it creates for `-o loop`: unmounting frees it.
      const still = execFileSync('losetup', ['-a'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`${loop}:`) && l.includes(root));
      assert.deepEqual(still, []);
    });
  } finally {
    process.env.PATH = saved;
    fs.rmSync(bin, { recursive: true, force: true });
  }
});
