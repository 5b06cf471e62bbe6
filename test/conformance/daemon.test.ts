/**
 * containerd's snapshotter conformance cases over gRPC: `erofs-vmdk serve`
 * with the embedded backend, driven through the pass-through profile
 * `erofs-vmdk-host` with the Snapshots API, mounting what it returns on the
 * host. Both mount styles; one daemon per style serves all 21 cases (their
 * keys do not collide), which keeps the suite's run time reasonable.
 *
 * The chained-daemons suite runs the cases through a second daemon whose
 * backend is "remote", pointing at the first one.
 */
import { after, before, describe } from 'node:test';
import { startDaemon, type TestDaemon } from '../support/daemon';
import { allCases } from './cases';
import { defineSuite } from './harness';
import { grpcSnapshotter } from './snapshotter-client';

for (const mountStyle of ['legacy', 'manager'] as const) {
  describe(`conformance over gRPC, embedded backend, ${mountStyle} mount style`, () => {
    let d: TestDaemon;
    before(async () => {
      d = await startDaemon({ backend: 'embedded', logLevel: 'warn', config: { embedded: { mount_style: mountStyle } } });
    });
    after(async () => {
      await d?.close();
    });
    defineSuite(`erofs-vmdk-host (${mountStyle})`, async () => ({
      sn: grpcSnapshotter(d.client, 'erofs-vmdk-host'),
      cleanup: async () => {},
    }));
  });
}

describe('conformance over gRPC, embedded backend, manager mount style in block mode (default_size)', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({ backend: 'embedded', logLevel: 'warn', config: { embedded: { mount_style: 'manager', default_size: 16 << 20 } } });
  });
  after(async () => {
    await d?.close();
  });
  // containerd runs its whole suite in block mode too (TestErofsWithQuota); the file-changing cases here.
  defineSuite(
    'erofs-vmdk-host (manager, block mode)',
    async () => ({ sn: grpcSnapshotter(d.client, 'erofs-vmdk-host'), cleanup: async () => {} }),
    ['Basic', 'StatActive', 'Transitivity', 'RemoveDirectoryInLowerLayer', 'Chown', 'DeletedFilesInChildSnapshot', 'MoveFileFromLowerLayer', 'ViewReadonly', 'RootPermission', 'Rename'],
  );
});

describe('chained daemons: remote backend -> embedded daemon (legacy)', () => {
  let upstream: TestDaemon;
  let front: TestDaemon;
  before(async () => {
    upstream = await startDaemon({ backend: 'embedded', logLevel: 'warn' });
    front = await startDaemon({
      backend: 'remote',
      logLevel: 'warn',
      config: { remote: { address: upstream.socket, snapshotter: 'erofs-vmdk-host' } },
    });
  });
  after(async () => {
    await front?.close();
    await upstream?.close();
  });
  // Every case but the two slow ones (128 layers; LayerFileUpdate waits for 4 second boundaries),
  // which only repeat what the direct runs above already cover.
  defineSuite(
    'chained erofs-vmdk-host',
    async () => ({ sn: grpcSnapshotter(front.client, 'erofs-vmdk-host'), cleanup: async () => {} }),
    allCases({ dirRename: false })
      .map(([name]) => name)
      .filter((name) => name !== '128LayersMount' && name !== 'LayerFileUpdate'),
  );
});
