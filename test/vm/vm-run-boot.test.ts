/**
 * hack/vm-run boots a real QEMU guest (TCG, Debian 13 kernel) from a vmdk
 * mount list built from fixtures only: one virtio-blk disk, EROFS flat mode in
 * the guest, overlay upper, command output back on the host.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, before, after } from 'node:test';
import { fixture } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import {
  buildBusyboxImage,
  overlayMount,
  regularFiles,
  vmdkMount,
  vmRun,
  vmRunJson,
  VM_TEST_TIMEOUT_MS,
  writeDescriptor,
} from './vm-harness';


describe('vm-run boots the basic fixture from one flat vmdk disk', { timeout: VM_TEST_TIMEOUT_MS }, () => {
  let dir: string;
  let mountsFile: string;
  before(() => {
    dir = fs.realpathSync(makeTempDir('erofs-vmdk-vmtest-'));
    const basic = fixture('basic');
    const layers = fs.readFileSync(path.join(basic, 'layers.txt'), 'utf8').trim().split('\n').map((l) => path.join(basic, l));
    const descriptor = path.join(dir, 'basic.vmdk');
    writeDescriptor({ fsmeta: path.join(basic, 'fsmeta.erofs'), layers }, descriptor);
    mountsFile = path.join(dir, 'mounts.json');
    fs.writeFileSync(mountsFile, JSON.stringify([vmdkMount(descriptor), overlayMount(dir)]));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('shows every file of the merged image with the oracle content, top layer wins, whiteouts absent', async () => {
    // The fixture has no shell, so the command runs with the initramfs busybox in the root folder.
    const script = [
      'find . -type f | sort | while read -r f; do sha256sum "$f"; done',
      'echo "--"',
      'cat opt/tools/run.sh',
      'echo "--"',
      'for f in tmp/delete-me var/cache/pkgs/a.deb var/cache/pkgs/b.deb; do [ -e "$f" ] && echo "present $f" || echo "absent $f"; done',
      'echo "--"',
      'grep " /mnt/image " /proc/mounts',
      'ls /sys/block | grep ^vd',
    ].join('\n');
    const result = await vmRunJson(['--allow-dir', dir, '--allow-dir', fixture('basic'), '--mounts', mountsFile, '--exec', 'initramfs', '--', 'sh', '-c', script]);
    assert.equal(result.exitCode, 0, result.stderr);
    const [sums, topFile, whiteouts, mounts] = result.stdout.split('--\n');

    const inGuest = new Map(
      sums.trim().split('\n').map((line) => {
        const [sha, file] = line.split(/\s+/);
        return [file.replace(/^\.\//, ''), sha] as [string, string];
      }),
    );
    assert.deepEqual(inGuest, regularFiles(fs.readFileSync(fixture('basic', 'expected.tsv'), 'utf8')));

    // opt/tools/run.sh exists only in the top layer (layer4).
    const expectedFiles = regularFiles(fs.readFileSync(fixture('basic', 'expected.tsv'), 'utf8'));
    assert.equal(createHash('sha256').update(topFile).digest('hex'), expectedFiles.get('opt/tools/run.sh'));
    assert.equal(whiteouts, 'absent tmp/delete-me\nabsent var/cache/pkgs/a.deb\nabsent var/cache/pkgs/b.deb\n');
    // One disk, mounted as erofs with no device= option: flat mode.
    const [mountLine, disks] = mounts.trim().split('\n');
    assert.match(mountLine, /^\/dev\/vda \/mnt\/image erofs ro[, ]/);
    assert.doesNotMatch(mountLine, /device=/);
    assert.equal(disks, 'vda');
  });
});

/** QEMU's image locks are OFD byte-range locks; /proc/locks lists them by inode. */
function lockHeld(file: string): boolean {
  const ino = fs.statSync(file).ino;
  return fs.readFileSync('/proc/locks', 'utf8').split('\n').some((l) => l.includes('OFDLCK') && l.includes(`:${ino} `));
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('vm-run chroots into a busybox image', { timeout: VM_TEST_TIMEOUT_MS }, () => {
  let dir: string;
  let descriptor: string;
  before(() => {
    dir = fs.realpathSync(makeTempDir('erofs-vmdk-vmtest-'));
    const image = buildBusyboxImage(dir, { 'etc/issue': 'erofs-vmdk test image \\n \\l\n' });
    descriptor = path.join(dir, 'image.vmdk');
    writeDescriptor({ layers: [image] }, descriptor);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs the command chrooted over a tmpfs upper and returns its stdout, stderr and exit status', async () => {
    const mounts = JSON.stringify([vmdkMount(descriptor), overlayMount(dir)]);
    const out = await vmRun(
      ['--allow-dir', dir, '--mounts', '-', '--', '/bin/sh', '-c', 'cat /etc/issue; echo new > /etc/new; cat /etc/new; echo to-stderr >&2; exit 7'],
      mounts,
    );
    assert.equal(out.code, 7, out.stderr);
    assert.equal(out.stdout, 'erofs-vmdk test image \\n \\l\nnew\n');
    assert.equal(out.stderr, 'to-stderr\n');
    // The host upperdir named in the mount list is not shared with the guest.
    assert.equal(fs.existsSync(path.join(dir, 'fs', 'etc', 'new')), false);
  });

  it('boots while another process holds an extent open for writing (force-share=on), which plain readonly=on cannot', async () => {
    const image = path.join(dir, 'busybox.erofs');
    // A paused QEMU that attached the layer blob read-write holds QEMU's write lock on it.
    const holder = spawn('qemu-system-x86_64', ['-nodefaults', '-machine', 'pc,accel=tcg', '-display', 'none', '-S',
      '-drive', `file=${image},format=raw,if=none,id=h`, '-device', 'virtio-blk-pci,drive=h'], { stdio: 'ignore' });
    try {
      await waitFor(() => lockHeld(image), 10_000);
      const plain = spawnSync('qemu-system-x86_64', ['-nodefaults', '-machine', 'pc,accel=tcg', '-display', 'none', '-S',
        '-drive', `file=${descriptor},format=vmdk,if=none,id=d,readonly=on`, '-device', 'virtio-blk-pci,drive=d'], { encoding: 'utf8', timeout: 20_000 });
      assert.match(plain.stderr, /Failed to get shared "write" lock/);
      const mounts = JSON.stringify([vmdkMount(descriptor), overlayMount(dir)]);
      const out = await vmRunJson(['--allow-dir', dir, '--mounts', '-', '--', 'cat', '/etc/issue'], mounts);
      assert.equal(out.stdout, 'erofs-vmdk test image \\n \\l\n');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('close', resolve));
    }
  });

  it('attaches a block-mode ext4 upper as a second disk and writes land in it', async () => {
    const upperImage = path.join(dir, 'rwlayer.img');
    const mounts = JSON.stringify([
      { type: 'mkfs/ext4', source: upperImage, target: '', options: ['X-containerd.mkfs.fs=ext4', `X-containerd.mkfs.size=${64 << 20}`, 'rw', 'loop'] },
      vmdkMount(descriptor),
      { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: ['workdir={{ mount 0 }}/work', 'upperdir={{ mount 0 }}/upper', 'lowerdir={{ mount 1 }}'] },
    ]);
    const first = await vmRunJson(['--allow-dir', dir, '--mounts', '-', '--', '/bin/sh', '-c', 'echo persisted > /etc/written-in-vm; ls /sys/block'], mounts);
    assert.equal(first.exitCode, 0, first.stderr);
    assert.equal(first.stdout, 'vda\nvdb\n');
    // The write is in the host's ext4 image, under upper/.
    const onHost = execFileSync('debugfs', ['-R', 'cat /upper/etc/written-in-vm', upperImage], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.equal(onHost, 'persisted\n');
    // And a second boot sees it through the overlay.
    const second = await vmRunJson(['--allow-dir', dir, '--mounts', '-', '--', 'cat', '/etc/written-in-vm'], mounts);
    assert.equal(second.stdout, 'persisted\n');
  });
});
