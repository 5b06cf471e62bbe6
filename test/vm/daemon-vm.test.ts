/**
 * Daemon → VM, without containerd: the real erofs-vmdk daemon (embedded
 * backend, containerd ≥ 2.2 "manager" mount shapes) unpacks the basic
 * fixture the way containerd's EROFS differ does, a container snapshot is
 * prepared with the `erofs-vmdk` profile, and hack/vm-run fetches its mounts
 * over gRPC from the daemon's socket and boots the guest from the vmdk mount.
 *
 * No fsmeta is handed to the daemon: the merged metadata is built natively
 * (merge) and described (vmdk) by the product itself.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it, before, after } from 'node:test';
import { startDaemon, unpackFixture, type TestDaemon } from '../support/daemon';
import { fixture } from '../support/fixtures';
import { regularFiles, vmRunJson, VM_TEST_TIMEOUT_MS } from './vm-harness';


describe('erofs-vmdk daemon (embedded backend) → vmdk mount → VM', { timeout: VM_TEST_TIMEOUT_MS }, () => {
  let d: TestDaemon;
  const key = 'default/100/container-1';
  before(async () => {
    d = await startDaemon({ backend: 'embedded', config: { embedded: { mount_style: 'manager' } } });
    const image = await unpackFixture(d.client, { snapshotter: 'erofs-vmdk', caseDir: fixture('basic'), differ: 'copy', fsmeta: false });
    await d.client.prepare({ snapshotter: 'erofs-vmdk', key, parent: image.top });
  });
  after(async () => {
    await d?.close();
  });

  it('returns one vmdk mount for the container and the guest sees the merged image', async () => {
    const mounts = await d.client.mounts({ snapshotter: 'erofs-vmdk', key });
    assert.deepEqual(
      mounts.map((m) => m.type),
      ['vmdk', 'format/mkdir/overlay'],
      JSON.stringify(mounts),
    );
    const script = [
      'find . -type f | sort | while read -r f; do sha256sum "$f"; done',
      'echo "--"',
      'for f in tmp/delete-me var/cache/pkgs/a.deb; do [ -e "$f" ] && echo "present $f" || echo "absent $f"; done',
    ].join('\n');
    const result = await vmRunJson([
      '--grpc', key, '--address', d.socket, '--snapshotter', 'erofs-vmdk', '--namespace', 'default',
      '--allow-dir', d.root,
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
  });
});
