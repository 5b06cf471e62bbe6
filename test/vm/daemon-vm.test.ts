/**
 * Daemon → VM, without containerd: the real erofs-vmdk daemon (embedded
 * backend, containerd ≥ 2.2 "manager" mount shapes, block mode) unpacks the
 * basic fixture the way containerd's EROFS differ does, a container snapshot
 * is prepared with the `erofs-vmdk` profile, and hack/vm-run fetches its
 * mounts over gRPC from the daemon's socket and boots the guest from them:
 * the descriptor as ONE read-only disk, the ext4 writable layer as a second
 * disk. The answer is checked against the contract the profile is configured
 * for (v2 by default: one fuse.erofs-vmdk-mount entry; v1: mkfs/ext4 + vmdk +
 * overlay). A second profile configured `contract = 1` is checked without a
 * boot (`vm-run --check-only`).
 *
 * No fsmeta is handed to the daemon: the merged metadata is built natively
 * (merge) and described (vmdk) by the product itself.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, it, before, after } from 'node:test';
import { startDaemon, unpackFixture, type TestDaemon } from '../support/daemon';
import { fixture } from '../support/fixtures';
import { configuredContract, qemuDrives, regularFiles, vmRun, vmRunJson, VM_TEST_TIMEOUT_MS } from './vm-harness';

const UPPER_SIZE = 64 << 20;

describe('erofs-vmdk daemon (embedded backend, block mode) → rootfs mount → VM', { timeout: VM_TEST_TIMEOUT_MS }, () => {
  let d: TestDaemon;
  const key = 'default/100/container-1';
  const v1Key = 'default/200/container-v1';
  before(async () => {
    d = await startDaemon({
      backend: 'embedded',
      config: {
        embedded: { mount_style: 'manager', default_size: UPPER_SIZE },
        // `erofs-vmdk` keeps the daemon's default contract; `erofs-vmdk-v1` asks for v1.
        profiles: { 'erofs-vmdk': { rewrite: true }, 'erofs-vmdk-v1': { rewrite: true, contract: 1 } },
      },
    });
    const image = await unpackFixture(d.client, { snapshotter: 'erofs-vmdk', caseDir: fixture('basic'), differ: 'copy', fsmeta: false });
    await d.client.prepare({ snapshotter: 'erofs-vmdk', key, parent: image.top });
    const v1Image = await unpackFixture(d.client, { snapshotter: 'erofs-vmdk-v1', caseDir: fixture('basic'), differ: 'copy', fsmeta: false, seq: 300 });
    await d.client.prepare({ snapshotter: 'erofs-vmdk-v1', key: v1Key, parent: v1Image.top });
  });
  after(async () => {
    await d?.close();
  });

  it('returns the configured contract; the guest sees the merged image on one read-only disk and writes to the upper image', async () => {
    const contract = configuredContract(d.configPath, 'erofs-vmdk');
    const mounts = await d.client.mounts({ snapshotter: 'erofs-vmdk', key });
    let descriptor: string;
    let upperImage: string;
    let upperDir: string;
    if (contract === 2) {
      assert.equal(mounts.length, 1, JSON.stringify(mounts));
      const [m] = mounts;
      assert.equal(m.type, 'fuse.erofs-vmdk-mount');
      const image = m.options.find((o) => o.startsWith('X-erofs-vmdk.upper-image='));
      assert.ok(image, JSON.stringify(m));
      assert.deepEqual(
        [...m.options].sort(),
        ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat', image, `X-erofs-vmdk.upper-image-size=${UPPER_SIZE}`, 'X-erofs-vmdk.upper-image-fs=ext4'].sort(),
      );
      [descriptor, upperImage, upperDir] = [m.source, image.slice(image.indexOf('=') + 1), 'upper'];
    } else {
      assert.deepEqual(mounts.map((m) => m.type), ['mkfs/ext4', 'vmdk', 'format/mkdir/overlay'], JSON.stringify(mounts));
      const upper = mounts[2].options.find((o) => o.startsWith('upperdir={{ mount 0 }}/'));
      assert.ok(upper, JSON.stringify(mounts[2]));
      [descriptor, upperImage, upperDir] = [mounts[1].source, mounts[0].source, upper.slice('upperdir={{ mount 0 }}/'.length)];
    }

    const script = [
      'find . -type f | sort | while read -r f; do sha256sum "$f"; done',
      'echo "--"',
      'for f in tmp/delete-me var/cache/pkgs/a.deb; do [ -e "$f" ] && echo "present $f" || echo "absent $f"; done',
      'echo written-in-the-guest >from-guest',
    ].join('\n');
    const result = await vmRunJson([
      '--grpc', key, '--address', d.socket, '--snapshotter', 'erofs-vmdk', '--namespace', 'default',
      '--allow-dir', d.root, '--print-qemu',
      '--exec', 'initramfs', '--', 'sh', '-c', script,
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    const [sums, whiteouts] = result.stdout.split('--\n');
    const inGuest = new Map(
      sums.trim().split('\n').map((line) => {
        const [sha, file] = line.split(/\s+/);
        return [file.replace(/^\.\//, ''), sha] as [string, string];
      }),
    );
    assert.deepEqual(inGuest, regularFiles(fs.readFileSync(fixture('basic', 'expected.tsv'), 'utf8')));
    assert.equal(whiteouts, 'absent tmp/delete-me\nabsent var/cache/pkgs/a.deb\n');

    // QEMU got exactly two disks: the descriptor read-only (the root, whatever the layer count) and the upper image writable.
    const drives = qemuDrives(result.log);
    assert.deepEqual(
      drives.map((o) => [o.get('file'), o.get('format'), o.get('readonly') ?? 'rw']),
      [[descriptor, 'vmdk', 'on'], [upperImage, 'raw', 'rw']],
    );
    // vm-run created and formatted the missing image; the guest's write landed in it.
    const cat = execFileSync('debugfs', ['-R', `cat /${upperDir}/from-guest`, upperImage], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.equal(cat, 'written-in-the-guest\n');
  });

  it('a profile configured with contract = 1 returns the v1 list, which vm-run accepts (no boot)', async () => {
    assert.equal(configuredContract(d.configPath, 'erofs-vmdk-v1'), 1);
    const mounts = await d.client.mounts({ snapshotter: 'erofs-vmdk-v1', key: v1Key });
    assert.deepEqual(mounts.map((m) => m.type), ['mkfs/ext4', 'vmdk', 'format/mkdir/overlay'], JSON.stringify(mounts));
    const out = await vmRun(['--grpc', v1Key, '--address', d.socket, '--snapshotter', 'erofs-vmdk-v1', '--namespace', 'default', '--allow-dir', d.root, '--check-only']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^contract v1 \(vmdk\), block mode$/m);
    assert.match(out.stdout, /^descriptor \S+\.vmdk \(CID [0-9a-f]{8}, 5 extents, /m);
  });
});
