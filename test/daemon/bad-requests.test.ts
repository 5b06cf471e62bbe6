/**
 * Bad requests get the right gRPC code and a message saying what is wrong,
 * and the daemon keeps serving: after each one, a normal call succeeds.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ServiceError, status } from '@grpc/grpc-js';
import type { Mount } from '../../api/gen/containerd/types/mount';
import { assertContractV2 } from '../support/contract';
import { startDaemon, type TestDaemon, unpackFixture } from '../support/daemon';
import { fixture } from '../support/fixtures';
import { makeTempDir } from '../support/kernel-mounts';
import { startUpstream, type TestUpstream } from '../support/upstream';

const VM = 'erofs-vmdk';

describe('bad requests', () => {
  let up: TestUpstream;
  let d: TestDaemon;
  let top: string;
  let tmp: string;
  let seq = 100;

  before(async () => {
    tmp = makeTempDir();
    up = await startUpstream();
    d = await startDaemon({ upstream: up });
    top = (await unpackFixture(d.client, { snapshotter: VM, caseDir: fixture('basic') })).top;
  });
  after(async () => {
    await d?.close();
    await up?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** The call fails with `code` and a message matching `message`; then the daemon still answers a normal call. */
  async function rejectsThenServes(call: () => Promise<unknown>, code: status | status[], message: RegExp): Promise<void> {
    const codes = Array.isArray(code) ? code : [code];
    await assert.rejects(call(), (e: ServiceError) => {
      assert.ok(codes.includes(e.code), `code ${status[e.code]} not in ${codes.map((c) => status[c])} for: ${e.details}`);
      if (process.env.SHOW_ERRORS) console.log(status[e.code], e.details);
      assert.match(e.details, message);
      return true;
    });
    const key = `default/${seq++}/after-bad-request`;
    // A normal call right after still works: the default (contract v2) container entry.
    assert.ok(fs.existsSync(assertContractV2(await d.client.prepare({ snapshotter: VM, key, parent: top }), { kind: 'directory' })));
    await d.client.remove({ snapshotter: VM, key });
  }

  test('empty key: InvalidArgument', async () => {
    await rejectsThenServes(() => d.client.prepare({ snapshotter: VM, key: '' }), status.INVALID_ARGUMENT, /key must not be empty/);
    await rejectsThenServes(() => d.client.mounts({ snapshotter: VM, key: '' }), status.INVALID_ARGUMENT, /key/);
    await rejectsThenServes(() => d.client.commit({ snapshotter: VM, name: '', key: 'x' }), status.INVALID_ARGUMENT, /name must not be empty/);
  });

  test('unknown profile: InvalidArgument naming the known ones', async () => {
    await rejectsThenServes(
      () => d.client.prepare({ snapshotter: 'overlayfs', key: `default/${seq++}/x`, parent: top }),
      status.INVALID_ARGUMENT,
      /overlayfs[\s\S]*erofs-vmdk[\s\S]*erofs-vmdk-host|erofs-vmdk[\s\S]*overlayfs/,
    );
  });

  test('invalid namespace metadata: InvalidArgument', async () => {
    await rejectsThenServes(() => d.client.stat({ snapshotter: VM, key: top }, { namespace: 'bad/namespace' }), status.INVALID_ARGUMENT, /namespace/);
  });

  test('Update of an immutable field: InvalidArgument', async () => {
    await rejectsThenServes(() => d.client.update({ snapshotter: VM, info: { name: top }, paths: ['parent'] }), status.INVALID_ARGUMENT, /parent/);
  });

  for (const [name, bad] of [
    ['a double quote', 'la"yer.erofs'],
    ['a newline', 'lay\ner.erofs'],
  ] as const) {
    test(`a mount list whose paths contain ${name}: refused with a message, nothing written`, async () => {
      const file = path.join(tmp, bad);
      fs.copyFileSync(fixture('single', 'layer1.erofs'), file);
      const key = `default/${seq++}/ctr-hostile-${name.replace(/\W/g, '')}`;
      const mounts: Mount[] = [
        { type: 'erofs', source: file, target: '', options: ['ro', 'loop'] },
        { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: [`workdir=${tmp}/w`, `upperdir=${tmp}/u`, 'lowerdir={{ mount 0 }}'] },
      ];
      up.setMounts(new RegExp(`${key.split('/').pop()}$`), mounts);
      const before = fs.readdirSync(path.join(d.root, 'vmdk')).length;
      await rejectsThenServes(() => d.client.prepare({ snapshotter: VM, key }), status.INVALID_ARGUMENT, /path|quote|newline|"/i);
      assert.equal(fs.readdirSync(path.join(d.root, 'vmdk')).length, before, 'no descriptor was written');
    });
  }

  test('a fsmeta with the wrong device count: refused, never a descriptor', async () => {
    const key = `default/${seq++}/ctr-extra-devices`;
    const layers = [1, 2, 3, 4].map((n) => `device=${fixture('basic', `layer${n}.erofs`)}`);
    up.setMounts(new RegExp(`${key.split('/').pop()}$`), [
      { type: 'erofs', source: fixture('bad-inputs', 'extra-devices-3.erofs'), target: '', options: ['ro', 'loop', ...layers] },
      { type: 'format/mkdir/overlay', source: 'overlay', target: '', options: [`workdir=${tmp}/w`, `upperdir=${tmp}/u`, 'lowerdir={{ mount 0 }}'] },
    ]);
    const before = fs.readdirSync(path.join(d.root, 'vmdk')).length;
    // The input is invalid (InvalidArgument) or the snapshot cannot be flattened (FailedPrecondition):
    // either way the message names the device count and no descriptor is written.
    await rejectsThenServes(() => d.client.prepare({ snapshotter: VM, key }), [status.INVALID_ARGUMENT, status.FAILED_PRECONDITION], /device/i);
    assert.equal(fs.readdirSync(path.join(d.root, 'vmdk')).length, before);
  });

  test('a label over 4096 bytes: InvalidArgument naming it', async () => {
    await rejectsThenServes(
      () => d.client.prepare({ snapshotter: VM, key: `default/${seq++}/big-label`, parent: top, labels: { 'containerd.io/snapshot/big': 'x'.repeat(5000) } }),
      status.INVALID_ARGUMENT,
      /containerd\.io\/snapshot\/big.*4096/,
    );
  });

  test('16 MiB of labels: ResourceExhausted', async () => {
    const labels: Record<string, string> = {};
    for (let i = 0; i < 4200; i++) labels[`l${i}`] = 'v'.repeat(4000);
    await rejectsThenServes(() => d.client.prepare({ snapshotter: VM, key: `default/${seq++}/huge`, parent: top, labels }), status.RESOURCE_EXHAUSTED, /larger than max/);
  });
});
