/**
 * The proxy core speaks mount contract v2 by default (docs/contract-v2.md):
 * one `fuse.erofs-vmdk-mount` entry whose source is the same descriptor v1
 * would name; a profile with `contract: 1` keeps the v1 list.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { HOST_MOUNT_TYPE } from '../../src/rewrite';
import { parseDescriptor } from '../../src/vmdk';
import { fixture } from '../support/fixtures';
import { caseLayers, NS, nextKey, startHarness, unpack, type Harness } from './helpers';

describe('proxy core: contract v2 is the default of a rewriting profile', () => {
  let h: Harness;
  let top: string;
  before(async () => {
    h = startHarness({ profiles: { vm: { rewrite: true }, 'vm-v1': { rewrite: true, contract: 1 } } });
    top = await unpack(h, caseLayers('basic'), { profile: 'vm', fsmeta: fixture('basic', 'fsmeta.erofs') });
  });
  after(() => h.close());

  it('a container gets one entry: the descriptor, the contract options and its upper/work dirs', async () => {
    const mounts = await h.proxy.prepare(NS, 'vm', nextKey(), top, {});
    assert.equal(mounts.length, 1);
    const [entry] = mounts;
    assert.equal(entry.type, HOST_MOUNT_TYPE);
    assert.deepEqual(entry.options.slice(0, 3), ['X-erofs-vmdk.contract=2', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat']);
    assert.deepEqual(entry.options.slice(3).map((o) => o.split('=')[0]), ['upperdir', 'workdir']);
    const extents = parseDescriptor(fs.readFileSync(entry.source, 'utf8')).extents.map((e) => e.path);
    assert.deepEqual(extents, [fixture('basic', 'fsmeta.erofs'), ...caseLayers('basic')]);
  });

  it('a view is the same entry, read-only', async () => {
    const mounts = await h.proxy.view(NS, 'vm', nextKey('view'), top, {});
    assert.deepEqual(mounts.map((m) => [m.type, m.options[0]]), [[HOST_MOUNT_TYPE, 'ro']]);
  });

  it('Mounts of the container answers the same entry as Prepare did', async () => {
    const key = nextKey();
    const prepared = await h.proxy.prepare(NS, 'vm', key, top, {});
    assert.deepEqual(await h.proxy.mounts(NS, 'vm', key), prepared);
  });

  it('unpack (extract-) keys are never rewritten, whatever the contract', async () => {
    const mounts = await h.proxy.prepare(NS, 'vm', 'default/1/extract-1-x sha256:y', top, {});
    assert.notEqual(mounts[0].type, HOST_MOUNT_TYPE);
  });
});
