import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { SnapshotInfo } from '../../src/backend/backend';
import { fixture } from '../support/fixtures';
import { LAYER_LABEL } from './fake-backend';
import { caseLayers, expectKind, NS, nextKey, startHarness, unpack, type Harness } from './helpers';


async function list(h: Harness, profile: string, filters: string[] = []): Promise<SnapshotInfo[]> {
  const out: SnapshotInfo[] = [];
  for await (const s of h.proxy.list({}, profile, filters)) out.push(s);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

describe('proxy core: profiles', () => {
  let h: Harness;
  let rewriteTop: string;
  let hostTop: string;
  const sameKey = 'default/1/shared-key';
  before(async () => {
    h = startHarness();
    rewriteTop = await unpack(h, caseLayers('basic'), { fsmeta: fixture('basic', 'fsmeta.erofs') });
    hostTop = await unpack(h, caseLayers('basic'), { profile: 'erofs-vmdk-host', fsmeta: fixture('basic', 'fsmeta.erofs') });
  });
  after(() => h.close());

  it('an unknown profile is InvalidArgument naming the known ones', async () => {
    await assert.rejects(h.proxy.prepare(NS, 'overlayfs', nextKey(), '', {}), expectKind('InvalidArgument', /"overlayfs".*erofs-vmdk, erofs-vmdk-host/));
    await assert.rejects(h.proxy.cleanup({}, ''), expectKind('InvalidArgument', /known profiles/));
    assert.equal(h.backend.calls.filter((c) => c.key?.includes('overlayfs')).length, 0);
  });

  it('an empty key is InvalidArgument and never reaches the backend', async () => {
    const before = h.backend.calls.length;
    await assert.rejects(h.proxy.prepare(NS, 'erofs-vmdk', '', '', {}), expectKind('InvalidArgument', /key/));
    await assert.rejects(h.proxy.mounts(NS, 'erofs-vmdk', ''), expectKind('InvalidArgument', /key/));
    assert.equal(h.backend.calls.length, before);
  });

  it('the same key in two profiles is two snapshots in the backend', async () => {
    const flat = await h.proxy.prepare(NS, 'erofs-vmdk', sameKey, rewriteTop, {});
    const host = await h.proxy.prepare(NS, 'erofs-vmdk-host', sameKey, hostTop, {});
    assert.ok(h.backend.snaps.has(`erofs-vmdk/${sameKey}`) && h.backend.snaps.has(`erofs-vmdk-host/${sameKey}`));
    assert.equal(flat[0].type, 'vmdk');
    assert.equal(host[0].type, 'erofs', 'the pass-through profile returns the upstream mounts');
    assert.equal(JSON.stringify(host), JSON.stringify(h.backend.mountsOf(`erofs-vmdk-host/${sameKey}`)));
  });

  it('Stat shows client names: prefix stripped from name and parent', async () => {
    const info = await h.proxy.stat(NS, 'erofs-vmdk', sameKey);
    assert.equal(info.name, sameKey);
    assert.equal(info.parent, rewriteTop);
    assert.equal(info.kind, 'active');
    await assert.rejects(h.proxy.stat(NS, 'erofs-vmdk', 'default/1/nope'), expectKind('NotFound'));
  });

  it('Update goes to this profile\'s snapshot and returns client names', async () => {
    const info = await h.proxy.stat(NS, 'erofs-vmdk', sameKey);
    const updated = await h.proxy.update(NS, 'erofs-vmdk', { ...info, labels: { a: 'b' } }, ['labels.a']);
    assert.equal(updated.name, sameKey);
    assert.equal(updated.labels.a, 'b');
    assert.equal((await h.proxy.stat(NS, 'erofs-vmdk-host', sameKey)).labels.a, undefined);
  });

  it('List without filters (a GC call, no namespace) shows only this profile, with client names', async () => {
    const names = (await list(h, 'erofs-vmdk')).map((s) => s.name);
    assert.ok(names.includes(sameKey) && names.includes(rewriteTop));
    assert.ok(!names.includes(hostTop), 'no snapshot of the other profile');
    assert.ok(names.every((n) => !n.startsWith('erofs-vmdk')));
    for (const s of await list(h, 'erofs-vmdk')) assert.ok(s.parent === '' || names.includes(s.parent));
  });

  it('List filters on name and parent are translated for the backend', async () => {
    const byName = await list(h, 'erofs-vmdk', [`name==${sameKey}`]);
    assert.deepEqual(byName.map((s) => s.name), [sameKey]);
    assert.deepEqual(h.backend.calls.at(-1)?.filters, [`name==${JSON.stringify(`erofs-vmdk/${sameKey}`)}`]);
    const children = await list(h, 'erofs-vmdk', [`parent==${rewriteTop},kind==active`]);
    assert.deepEqual(children.map((s) => s.name), [sameKey]);
    const notIt = await list(h, 'erofs-vmdk', [`name!=${sameKey}`]);
    assert.ok(!notIt.some((s) => s.name === sameKey) && notIt.length > 0);
  });

  it('List with a regular expression on name is evaluated on client names', async () => {
    const got = await list(h, 'erofs-vmdk', ['name~=^default/1/shared']);
    assert.deepEqual(got.map((s) => s.name), [sameKey]);
    assert.deepEqual(h.backend.calls.at(-1)?.filters, [], 'the backend was asked for everything');
  });

  it('List filters on labels pass through unchanged in meaning; several filters are OR-ed', async () => {
    const got = await list(h, 'erofs-vmdk', [`labels."${LAYER_LABEL}"==${JSON.stringify(caseLayers("basic")[0])}`, `name==${sameKey}`]);
    assert.equal(got.length, 2);
  });

  it('a malformed filter is InvalidArgument', async () => {
    await assert.rejects(list(h, 'erofs-vmdk', ['name==']), expectKind('InvalidArgument'));
  });

  it('Usage and Commit use the profile\'s backend keys', async () => {
    const key = nextKey('commit-me');
    await h.proxy.prepare(NS, 'erofs-vmdk', key, rewriteTop, {});
    assert.ok(h.proxy.store.references('erofs-vmdk', key));
    assert.deepEqual(await h.proxy.usage(NS, 'erofs-vmdk', key), { size: 4096, inodes: 1 });
    await h.proxy.commit(NS, 'erofs-vmdk', `${key}-committed`, key, {}, '');
    assert.ok(h.backend.snaps.has(`erofs-vmdk/${key}-committed`));
    assert.equal(h.proxy.store.references('erofs-vmdk', key), undefined, 'Commit drops the active key\'s references');
  });

  it('Remove of another profile\'s key is NotFound', async () => {
    await assert.rejects(h.proxy.remove(NS, 'erofs-vmdk', hostTop), expectKind('NotFound'));
  });

  it('Cleanup drops references of snapshots the backend lost, then collects their files', async () => {
    const key = nextKey('lost');
    const mounts = await h.proxy.prepare(NS, 'erofs-vmdk', key, rewriteTop, {});
    // Everything else referencing this descriptor goes away, then the backend loses the key behind our back.
    for (const k of [sameKey]) await h.proxy.remove(NS, 'erofs-vmdk', k);
    h.backend.snaps.delete(`erofs-vmdk/${key}`);
    await new Promise((r) => setTimeout(r, 5));
    await h.proxy.cleanup({}, 'erofs-vmdk');
    assert.equal(h.proxy.store.references('erofs-vmdk', key), undefined);
    assert.ok(!fs.existsSync(mounts[0].source));
  });

  it('close() closes the backend', async () => {
    const other = startHarness();
    await other.close();
    assert.equal(other.backend.closed, true);
  });
});
