/**
 * The daemon as containerd sees it: `erofs-vmdk serve` as a child process on a
 * temp unix socket, remote backend -> the test upstream (containerd 2.x EROFS
 * snapshotter mount shapes pointing at the fixture blobs), driven with a
 * grpc-js client sending `containerd-namespace` and backend keys `ns/seq/key`.
 * By default the rewriting profile answers mount contract v2 (one
 * `fuse.erofs-vmdk-mount` entry, docs/contract-v2.md); `contract = 1` keeps
 * the v1 `vmdk` list, checked in its own suites below.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ServiceError, status } from '@grpc/grpc-js';
import { Mount as WireMount, type Mount } from '../../api/gen/containerd/types/mount';
import { lintDescriptor, parseDescriptor } from '../../src/vmdk';
import { assertContractV2, CONTRACT_V1_CONFIG, descriptorOfRootfs, V1_VMDK_OPTIONS, V2_TYPE, type V2Writable } from '../support/contract';
import { SnapshotsTestClient, startDaemon, type TestDaemon, unpackFixture } from '../support/daemon';
import { fixture } from '../support/fixtures';
import { listFlatDescriptor, makeTempDir } from '../support/kernel-mounts';
import { startUpstream, type TestUpstream } from '../support/upstream';

const VM = 'erofs-vmdk';
const HOST = 'erofs-vmdk-host';
const BASIC_EXTENTS = ['fsmeta.erofs', 'layer1.erofs', 'layer2.erofs', 'layer3.erofs', 'layer4.erofs'];

function encoded(mounts: Mount[]): Buffer[] {
  return mounts.map((m) => Buffer.from(WireMount.encode(m).finish()));
}

/** The upstream's own answer for the snapshot behind the daemon's last call of `rpc`. */
function lastUpstreamKey(up: TestUpstream, rpc: string): string {
  const call = [...up.calls].reverse().find((c) => c.rpc === rpc);
  assert.ok(call, `no upstream ${rpc} call`);
  return call.key;
}

function expectedTsv(caseName: string): string {
  return fs.readFileSync(fixture(caseName, 'expected.tsv'), 'utf8');
}

function assertLintsClean(descriptor: string): void {
  const findings = lintDescriptor(parseDescriptor(fs.readFileSync(descriptor, 'utf8')), { baseDir: path.dirname(descriptor) });
  assert.deepEqual(findings, [], `descriptor ${descriptor} has lint findings`);
}

function descriptorExtents(descriptor: string): string[] {
  return parseDescriptor(fs.readFileSync(descriptor, 'utf8')).extents.map((e) => String(e.path));
}

/** The value of `name=` in a mount's options (asserted present). */
function optionOf(m: Mount, name: string): string {
  const o = m.options.find((x) => x.startsWith(`${name}=`));
  assert.ok(o !== undefined, `${name}= in ${JSON.stringify(m)}`);
  return o.slice(name.length + 1);
}

/**
 * The writable layer a v2 answer must carry for the daemon's last container
 * Prepare: the upstream overlay's own upperdir and workdir (directory mode).
 */
async function upstreamDirectoryLayer(up: TestUpstream): Promise<V2Writable> {
  const upstream = await up_mounts(up, lastUpstreamKey(up, 'Prepare'));
  const overlay = upstream[upstream.length - 1];
  assert.equal(overlay.type, 'format/mkdir/overlay', `upstream answer: ${JSON.stringify(upstream)}`);
  return { kind: 'directory', upperdir: optionOf(overlay, 'upperdir'), workdir: optionOf(overlay, 'workdir') };
}

describe('erofs-vmdk serve with a remote backend', () => {
  let up: TestUpstream;
  let d: TestDaemon;
  let basicTop: string;
  let basicCtr: { key: string; descriptor: string } | undefined;
  let seq = 100;

  before(async () => {
    up = await startUpstream();
    d = await startDaemon({ upstream: up });
    basicTop = (await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic') })).top;
  });
  const tempDirs: string[] = [];
  after(async () => {
    await d?.close();
    await up?.close();
    for (const t of tempDirs) fs.rmSync(t, { recursive: true, force: true });
  });

  test('forwards with the upstream snapshotter name and the namespace', () => {
    const prepares = up.calls.filter((c) => c.rpc === 'Prepare');
    assert.ok(prepares.length >= 4);
    for (const c of prepares) {
      assert.equal(c.snapshotter, 'upstream');
      assert.equal(c.namespace, 'default');
    }
  });

  test('extract Prepare: mounts byte-identical to the upstream\'s', async () => {
    for (const parent of ['', basicTop]) {
      const key = `default/${seq++}/extract-4711-AbCd sha256:${'e'.repeat(64)}${parent ? 'p' : ''}`;
      const mounts = await d.client.prepare({ snapshotter: VM, key, parent });
      const upstream = await up_mounts(up, lastUpstreamKey(up, 'Prepare'));
      assert.deepEqual(encoded(mounts), encoded(upstream));
      assert.ok(!mounts.some((m) => m.type === 'vmdk' || m.type === V2_TYPE), 'no rootfs disk mount for an unpack');
      await d.client.remove({ snapshotter: VM, key });
    }
  });

  test('container Prepare on basic: one fuse.erofs-vmdk-mount entry with the upstream overlay\'s upperdir/workdir, the descriptor lints clean and lists expected.tsv', async () => {
    const key = `default/${seq++}/ctr-basic`;
    const mounts = await d.client.prepare({ snapshotter: VM, key, parent: basicTop, labels: { 'containerd.io/snapshot/cri.x': '1' } });
    const upstream = await up_mounts(up, lastUpstreamKey(up, 'Prepare'));
    assert.deepEqual(upstream.map((m) => m.type), ['erofs', 'format/mkdir/overlay'], 'upstream answer: fsmeta erofs + overlay');
    assert.ok(upstream[1].options.includes('lowerdir={{ mount 0 }}'));
    const descriptor = assertContractV2(mounts, await upstreamDirectoryLayer(up));
    assert.match(descriptor, new RegExp(`^${d.root}/vmdk/[0-9a-f]{64}\\.vmdk$`));
    assertLintsClean(descriptor);
    // fsmeta first, then the layers bottom first: the fixture files themselves.
    assert.deepEqual(descriptorExtents(descriptor), BASIC_EXTENTS.map((f) => fixture('basic', f)));
    assert.equal(await listFlatDescriptor(descriptor), expectedTsv('basic'));
    // Mounts of the same key: same answer.
    assert.deepEqual(await d.client.mounts({ snapshotter: VM, key }), mounts);
    basicCtr = { key, descriptor };
  });

  test('View of the image: one read-only fuse.erofs-vmdk-mount entry (ro, no upper), the descriptor lints clean and names the image\'s blobs', async () => {
    const key = `default/${seq++}/view-basic`;
    const mounts = await d.client.view({ snapshotter: VM, key, parent: basicTop });
    const descriptor = assertContractV2(mounts, { kind: 'view' });
    assertLintsClean(descriptor);
    assert.deepEqual(descriptorExtents(descriptor), BASIC_EXTENTS.map((f) => fixture('basic', f)));
  });

  test('the pass-through profile returns the upstream mounts unchanged, and profiles never collide', async () => {
    const host = await unpackFixture(d.client, { snapshotter: HOST, caseDir: fixture('basic'), seq: 1 });
    assert.equal(host.top, basicTop, 'same containerd names in both profiles');
    const key = `default/${seq++}/ctr-host`;
    const mounts = await d.client.prepare({ snapshotter: HOST, key, parent: host.top });
    assert.deepEqual(encoded(mounts), encoded(await up_mounts(up, lastUpstreamKey(up, 'Prepare'))));
    assert.equal(mounts[0].type, 'erofs');
    const vmNames = (await d.client.list({ snapshotter: VM })).map((i) => i.name);
    const hostNames = (await d.client.list({ snapshotter: HOST })).map((i) => i.name);
    assert.ok(vmNames.includes(basicTop) && hostNames.includes(basicTop));
    assert.ok(!vmNames.includes(key), 'a host-profile snapshot is not listed in the vm profile');
    assert.equal((await d.client.stat({ snapshotter: VM, key: basicTop })).name, basicTop, 'names come back without any profile prefix');
  });

  test('wrong-uniaddr fsmeta: a repaired private fsmeta in the store, never a wrong tree', async () => {
    const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('wrong-uniaddr'), namespace: 'wu', seq: 1 });
    const key = `wu/${seq++}/ctr`;
    const mounts = await d.client.prepare({ snapshotter: VM, key, parent: img.top }, { namespace: 'wu' });
    const descriptor = assertContractV2(mounts, await upstreamDirectoryLayer(up));
    const [meta, ...layers] = descriptorExtents(descriptor);
    assert.match(meta, new RegExp(`^${d.root}/fsmeta/[0-9a-f]{64}\\.erofs$`), 'fsmeta extent is our private copy');
    assert.deepEqual(fs.readFileSync(meta), fs.readFileSync(fixture('basic', 'fsmeta.erofs')), 'the repair gives basic/fsmeta.erofs byte for byte');
    assert.deepEqual(layers, [1, 2, 3, 4].map((n) => fixture('wrong-uniaddr', `layer${n}.erofs`)));
    assert.ok(fs.readFileSync(fixture('wrong-uniaddr', 'fsmeta.erofs')).compare(fs.readFileSync(meta)) !== 0, 'the snapshotter\'s file is untouched');
    assertLintsClean(descriptor);
    assert.equal(await listFlatDescriptor(descriptor), expectedTsv('wrong-uniaddr'));
  });

  test('single-layer image: the descriptor is just the layer', async () => {
    const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('single'), namespace: 'single', seq: 1 });
    const mounts = await d.client.prepare({ snapshotter: VM, key: `single/${seq++}/ctr`, parent: img.top }, { namespace: 'single' });
    const descriptor = assertContractV2(mounts, await upstreamDirectoryLayer(up));
    assert.deepEqual(descriptorExtents(descriptor), [fixture('single', 'layer1.erofs')]);
    assert.equal(await listFlatDescriptor(descriptor), expectedTsv('single'));
  });

  test('Remove then Cleanup deletes the descriptor', async () => {
    const key = `default/${seq++}/ctr-short-lived`;
    // A private copy of the layer: descriptors are content-addressed, so the fixture's own
    // layer would share its descriptor with the other tests' containers.
    const caseDir = makeTempDir();
    fs.copyFileSync(fixture('single', 'layer1.erofs'), path.join(caseDir, 'layer1.erofs'));
    fs.writeFileSync(path.join(caseDir, 'layers.txt'), 'layer1.erofs\n');
    tempDirs.push(caseDir);
    const img = await unpackFixture(d.client, { snapshotter: VM, caseDir, namespace: 'gc', seq: 1 });
    const descriptor = assertContractV2(await d.client.prepare({ snapshotter: VM, key, parent: img.top }, { namespace: 'gc' }), await upstreamDirectoryLayer(up));
    assert.ok(fs.existsSync(descriptor));
    await d.client.remove({ snapshotter: VM, key }, { namespace: null });
    await d.client.cleanup({ snapshotter: VM }, { namespace: null });
    assert.ok(!fs.existsSync(descriptor), 'descriptor deleted once nothing references it');
    // Descriptors still in use survive Cleanup.
    assert.ok(basicCtr && fs.existsSync(basicCtr.descriptor), 'a descriptor still referenced survives Cleanup');
  });

  test('a key removed and prepared again on another image: Mounts answers for the new snapshot, never the remembered one', async () => {
    const single = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('single'), namespace: 'reuse', seq: 1 });
    const basic = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic'), namespace: 'reuse', seq: 100 });
    const key = `reuse/${seq++}/ctr`;
    const opts = { namespace: 'reuse' };
    await d.client.prepare({ snapshotter: VM, key, parent: basic.top }, opts);
    const [first] = await d.client.mounts({ snapshotter: VM, key }, opts);
    const asked = up.calls.filter((c) => c.rpc === 'Mounts').length;
    assert.deepEqual((await d.client.mounts({ snapshotter: VM, key }, opts))[0], first);
    assert.equal(up.calls.filter((c) => c.rpc === 'Mounts').length, asked, 'a warm Mounts is answered without the upstream');
    await d.client.remove({ snapshotter: VM, key }, { namespace: null }); // as containerd's garbage collector calls it
    await assert.rejects(d.client.mounts({ snapshotter: VM, key }, opts), (e: ServiceError) => e.code === status.NOT_FOUND);
    await d.client.prepare({ snapshotter: VM, key, parent: single.top }, opts);
    const [second] = await d.client.mounts({ snapshotter: VM, key }, opts);
    assert.notEqual(second.source, first.source);
    assert.deepEqual(descriptorExtents(second.source), [fixture('single', 'layer1.erofs')]);
    assert.equal(await listFlatDescriptor(second.source), expectedTsv('single'));
  });

  test('after killing and restarting the daemon, Mounts returns the same path with the same content', async () => {
    const key = `default/${seq++}/ctr-survivor`;
    const [before] = await d.client.prepare({ snapshotter: VM, key, parent: basicTop });
    const content = fs.readFileSync(before.source);
    await d.kill();
    await d.start();
    const [afterKill] = await d.client.mounts({ snapshotter: VM, key });
    assert.equal(afterKill.source, before.source);
    assert.deepEqual(fs.readFileSync(afterKill.source), content);
    await d.restart(); // graceful: SIGTERM must exit 0
    const [afterRestart] = await d.client.mounts({ snapshotter: VM, key });
    assert.equal(afterRestart.source, before.source);
    // A descriptor that vanished is rebuilt on the next Mounts.
    fs.rmSync(before.source);
    const [rebuilt] = await d.client.mounts({ snapshotter: VM, key });
    assert.equal(rebuilt.source, before.source);
    assert.deepEqual(fs.readFileSync(rebuilt.source), content);
  });

  test('with the upstream stopped calls answer Unavailable within 2 s naming the socket, and succeed again once it is back', async () => {
    await up.stop();
    try {
      for (const call of [() => d.client.mounts({ snapshotter: VM, key: basicTop }), () => d.client.stat({ snapshotter: VM, key: basicTop }), () => d.client.list({ snapshotter: VM })]) {
        const t0 = Date.now();
        await assert.rejects(call(), (e: ServiceError) => e.code === status.UNAVAILABLE && e.details.includes(up.address));
        const ms = Date.now() - t0;
        assert.ok(ms < 2000, `Unavailable after ${ms} ms`);
      }
      assert.equal(await d.client.checkHealth(), 'SERVING', 'the daemon itself stays up');
    } finally {
      await up.start();
    }
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        assert.equal((await d.client.stat({ snapshotter: VM, key: basicTop })).name, basicTop);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
});

describe('a contract = 1 profile keeps the v1 vmdk list', () => {
  let up: TestUpstream;
  let d: TestDaemon;
  let top: string;

  before(async () => {
    up = await startUpstream();
    d = await startDaemon({ upstream: up, config: CONTRACT_V1_CONFIG });
    top = (await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic') })).top;
  });
  after(async () => {
    await d?.close();
    await up?.close();
  });

  test('container Prepare: [vmdk, format/mkdir/overlay lowerdir={{ mount 0 }}], the overlay is the upstream\'s unchanged', async () => {
    const mounts = await d.client.prepare({ snapshotter: VM, key: 'default/100/ctr-v1', parent: top });
    assert.equal(mounts.length, 2, JSON.stringify(mounts));
    const [vmdk, overlay] = mounts;
    assert.equal(vmdk.type, 'vmdk');
    assert.deepEqual(vmdk.options, V1_VMDK_OPTIONS);
    assert.match(vmdk.source, new RegExp(`^${d.root}/vmdk/[0-9a-f]{64}\\.vmdk$`));
    const upstream = await up_mounts(up, lastUpstreamKey(up, 'Prepare'));
    assert.deepEqual(overlay, upstream[1], 'everything after the erofs run is unchanged');
    assert.equal(overlay.type, 'format/mkdir/overlay');
    assert.ok(overlay.options.includes('lowerdir={{ mount 0 }}'));
    assertLintsClean(vmdk.source);
    assert.deepEqual(descriptorExtents(vmdk.source), BASIC_EXTENTS.map((f) => fixture('basic', f)));
  });

  test('View of the image: [vmdk, format/bind {{ mount 0 }}]', async () => {
    const mounts = await d.client.view({ snapshotter: VM, key: 'default/101/view-v1', parent: top });
    assert.equal(mounts.length, 2, JSON.stringify(mounts));
    assert.equal(mounts[0].type, 'vmdk');
    assert.deepEqual(mounts[1], { type: 'format/bind', source: '{{ mount 0 }}', target: '', options: ['ro', 'rbind'] });
    const descriptor = descriptorOfRootfs(mounts);
    assertLintsClean(descriptor);
    assert.deepEqual(descriptorExtents(descriptor), BASIC_EXTENTS.map((f) => fixture('basic', f)));
  });
});

describe('block mode (containerd default_size)', () => {
  const BLOCK_SIZE = 64 << 20;

  /** A block-mode upstream, a daemon on it (extra `config`), the basic image unpacked, one container Prepare. */
  async function blockModePrepare(config: Record<string, unknown>, check: (mounts: Mount[], upstream: Mount[]) => Promise<void>): Promise<void> {
    const up = await startUpstream({ blockSize: BLOCK_SIZE });
    const d = await startDaemon({ upstream: up, config });
    try {
      const img = await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic') });
      const mounts = await d.client.prepare({ snapshotter: VM, key: 'default/50/ctr', parent: img.top });
      const upstream = await up_mounts(up, lastUpstreamKey(up, 'Prepare'));
      assert.deepEqual(upstream.map((m) => m.type), ['mkfs/ext4', 'erofs', 'format/mkdir/overlay'], 'upstream answer in block mode');
      await check(mounts, upstream);
    } finally {
      await d.close();
      await up.close();
    }
  }

  test('contract 1: [mkfs/ext4, vmdk, format/mkdir/overlay lowerdir={{ mount 1 }}], template renumbering kept', async () => {
    await blockModePrepare(CONTRACT_V1_CONFIG, async (mounts, upstream) => {
      assert.deepEqual(mounts.map((m) => m.type), ['mkfs/ext4', 'vmdk', 'format/mkdir/overlay']);
      assert.deepEqual(mounts[0], upstream[0]);
      assert.deepEqual(mounts[2], upstream[2]);
      assert.ok(mounts[2].options.includes('lowerdir={{ mount 1 }}'));
      assert.ok(mounts[2].options.includes('upperdir={{ mount 0 }}/upper'));
      const descriptor = descriptorOfRootfs(mounts);
      assert.equal(descriptor, mounts[1].source);
      assert.equal(await listFlatDescriptor(descriptor), expectedTsv('basic'));
    });
  });

  test('contract 2 (default): one entry carrying the upstream\'s ext4 image as X-erofs-vmdk.upper-image, its size and fs=ext4; the descriptor lists expected.tsv', async () => {
    await blockModePrepare({}, async (mounts, upstream) => {
      const image = upstream[0].source;
      assert.match(image, /^\/.*\/rwlayer\.img$/);
      assert.ok(upstream[0].options.includes(`X-containerd.mkfs.size=${BLOCK_SIZE}`));
      const descriptor = assertContractV2(mounts, { kind: 'image', image, size: BLOCK_SIZE, fs: 'ext4' });
      assert.equal(await listFlatDescriptor(descriptor), expectedTsv('basic'));
    });
  });
});

/** What the upstream itself returns for an upstream key (Mounts straight to its socket). */
async function up_mounts(up: TestUpstream, upstreamKey: string): Promise<Mount[]> {
  const c = new SnapshotsTestClient(up.address);
  try {
    return await c.mounts({ snapshotter: 'upstream', key: upstreamKey });
  } finally {
    c.close();
  }
}
