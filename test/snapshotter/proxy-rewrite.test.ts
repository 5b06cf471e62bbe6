import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MergeError } from '../../src/merge';
import type { Mount } from '../../src/mount';
import { lintDescriptor, parseDescriptor } from '../../src/vmdk';
import { fixture } from '../support/fixtures';
import { listFlatDescriptor } from '../support/kernel-mounts';
import { caseLayers, expectKind, NS, nextKey, startHarness, unpack, type Harness } from './helpers';

const VMDK_OPTIONS = ['ro', 'X-vmdk.fs=erofs', 'X-vmdk.layout=flat'];


function descriptorOf(mounts: Mount[]): string {
  assert.equal(mounts[0].type, 'vmdk');
  return mounts[0].source;
}

describe('proxy core: basic fixture with its fsmeta (containerd 2.x mounts)', () => {
  let h: Harness;
  let top: string;
  let key: string;
  let mounts: Mount[];
  before(async () => {
    h = startHarness();
    top = await unpack(h, caseLayers('basic'), { fsmeta: fixture('basic', 'fsmeta.erofs') });
    key = nextKey();
    mounts = await h.proxy.prepare(NS, 'erofs-vmdk', key, top, {});
  });
  after(() => h.close());

  it('returns [vmdk, format/mkdir/overlay lowerdir={{ mount 0 }} …]', () => {
    assert.equal(mounts.length, 2);
    assert.deepEqual({ ...mounts[0], source: '' }, { type: 'vmdk', source: '', target: '', options: VMDK_OPTIONS });
    assert.equal(mounts[0].source, path.join(fs.realpathSync(h.root), 'vmdk', path.basename(mounts[0].source)));
    assert.match(path.basename(mounts[0].source), /^[0-9a-f]{64}\.vmdk$/);
    assert.equal(mounts[1].type, 'format/mkdir/overlay');
    assert.ok(mounts[1].options.includes('lowerdir={{ mount 0 }}'), mounts[1].options.join(','));
    assert.ok(mounts[1].options.some((o) => o.startsWith('upperdir=')));
  });

  it('the descriptor lints clean and extents are fsmeta then layers 1..4 (the fixture files, unrepaired)', () => {
    const parsed = parseDescriptor(fs.readFileSync(descriptorOf(mounts), 'utf8'));
    assert.deepEqual(lintDescriptor(parsed), []);
    assert.deepEqual(parsed.extents.map((e) => e.path), [fixture('basic', 'fsmeta.erofs'), ...caseLayers('basic')]);
  });

  it('through qemu-img convert and a flat loop mount it lists exactly expected.tsv', async () => {
    assert.equal(await listFlatDescriptor(descriptorOf(mounts)), fs.readFileSync(fixture('basic', 'expected.tsv'), 'utf8'));
  });

  it('logs one info line for the rewrite with key, profile, layers, outcome, repaired and descriptor', () => {
    const lines = h.logs.filter((l) => l.msg === 'mounts rewritten to a flat vmdk' && l.key === key);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].level, 30);
    assert.deepEqual(
      { profile: lines[0].profile, layers: lines[0].layers, outcome: lines[0].outcome, repaired: lines[0].repaired, descriptor: lines[0].descriptor },
      { profile: 'erofs-vmdk', layers: 4, outcome: 'flat', repaired: false, descriptor: mounts[0].source },
    );
  });

  it('Mounts of the same key returns the same mounts; the key references the descriptor once', async () => {
    assert.deepEqual(await h.proxy.mounts(NS, 'erofs-vmdk', key), mounts);
    assert.deepEqual(h.proxy.store.references('erofs-vmdk', key)?.files, [path.relative(h.proxy.store.root, mounts[0].source)]);
  });

  it('a vanished descriptor is rebuilt on the next Mounts, same path and bytes', async () => {
    const file = descriptorOf(mounts);
    const bytes = fs.readFileSync(file);
    fs.rmSync(file);
    assert.deepEqual(await h.proxy.mounts(NS, 'erofs-vmdk', key), mounts);
    assert.deepEqual(fs.readFileSync(file), bytes);
  });

  it('a new instance on the same root (restart) returns the same path with the same content', async () => {
    const file = descriptorOf(mounts);
    const bytes = fs.readFileSync(file);
    h.restart();
    assert.deepEqual(await h.proxy.mounts(NS, 'erofs-vmdk', key), mounts);
    assert.deepEqual(fs.readFileSync(file), bytes);
  });

  it('a View of the image shares the descriptor', async () => {
    const view = await h.proxy.view(NS, 'erofs-vmdk', nextKey('view'), top, {});
    assert.equal(view[0].source, mounts[0].source);
  });

  it('extract keys pass through byte-identical to the backend\'s mounts', async () => {
    const extract = nextKey('extract-999-XyZ sha256:next');
    const got = await h.proxy.prepare(NS, 'erofs-vmdk', extract, top, {});
    assert.equal(JSON.stringify(got), JSON.stringify(h.backend.mountsOf(`erofs-vmdk/${extract}`)));
    assert.equal(got[0].type, 'erofs');
    await h.proxy.remove(NS, 'erofs-vmdk', extract);
  });

  it('Remove then Cleanup deletes the descriptor (once no other key uses it)', async () => {
    const file = descriptorOf(mounts);
    for (const s of await collect(h)) {
      if (s.kind !== 'committed') await h.proxy.remove({}, 'erofs-vmdk', s.name);
    }
    assert.ok(fs.existsSync(file), 'Remove alone does not delete files');
    await h.proxy.cleanup({}, 'erofs-vmdk');
    assert.ok(!fs.existsSync(file));
    assert.deepEqual(h.proxy.storeCounts(), { descriptors: 0, fsmeta: 0 });
  });

  it('counted every outcome for the observer', () => {
    assert.ok(h.outcomes.includes('flat') && h.outcomes.includes('passthrough'));
    assert.ok(!h.outcomes.includes('refused'));
  });
});

async function collect(h: Harness) {
  const out = [];
  for await (const s of h.proxy.list({}, 'erofs-vmdk', [])) out.push(s);
  return out;
}

describe('proxy core: wrong-uniaddr fixture', () => {
  let h: Harness;
  before(() => {
    h = startHarness();
  });
  after(() => h.close());

  it('repairs a private copy of the fsmeta and never serves the wrong tree', async () => {
    const top = await unpack(h, caseLayers('wrong-uniaddr'), { fsmeta: fixture('wrong-uniaddr', 'fsmeta.erofs') });
    const original = fs.readFileSync(fixture('wrong-uniaddr', 'fsmeta.erofs'));
    const mounts = await h.proxy.prepare(NS, 'erofs-vmdk', nextKey(), top, {});
    const extents = parseDescriptor(fs.readFileSync(descriptorOf(mounts), 'utf8')).extents.map((e) => e.path as string);
    const repaired = extents[0];
    assert.equal(path.dirname(repaired), path.join(h.proxy.store.root, 'fsmeta'));
    assert.deepEqual(fs.readFileSync(repaired), fs.readFileSync(fixture('basic', 'fsmeta.erofs')), 'repair gives basic/fsmeta.erofs byte for byte');
    assert.deepEqual(fs.readFileSync(fixture('wrong-uniaddr', 'fsmeta.erofs')), original, "the snapshotter's file is untouched");
    assert.equal(await listFlatDescriptor(descriptorOf(mounts)), fs.readFileSync(fixture('wrong-uniaddr', 'expected.tsv'), 'utf8'));
    const line = h.logs.find((l) => l.msg === 'mounts rewritten to a flat vmdk');
    assert.equal(line?.repaired, true);
    assert.equal(h.proxy.storeCounts().fsmeta, 1);
  });
});

describe('proxy core: single-layer image', () => {
  it('a view of one layer is just the vmdk mount, listing expected.tsv', async () => {
    const h = startHarness();
    try {
      const top = await unpack(h, caseLayers('single'));
      const mounts = await h.proxy.view(NS, 'erofs-vmdk', nextKey('view'), top, {});
      assert.deepEqual(mounts.map((m) => m.type), ['vmdk']);
      assert.equal(await listFlatDescriptor(mounts[0].source), fs.readFileSync(fixture('single', 'expected.tsv'), 'utf8'));
    } finally {
      await h.close();
    }
  });
});

describe('proxy core: refusals', () => {
  let h: Harness;
  before(() => {
    h = startHarness();
  });
  after(() => h.close());

  it('an fsmeta with the wrong device count is FailedPrecondition with the validator\'s reason, and nothing is left behind', async () => {
    const top = await unpack(h, caseLayers('basic'), { fsmeta: fixture('bad-inputs', 'extra-devices-3.erofs') });
    const key = nextKey();
    await assert.rejects(h.proxy.prepare(NS, 'erofs-vmdk', key, top, {}), expectKind('FailedPrecondition', /device-count|extra_devices|device/));
    assert.ok(!h.backend.snaps.has(`erofs-vmdk/${key}`), 'the refused snapshot was removed from the backend');
    assert.equal(h.outcomes.at(-1), 'refused');
    assert.deepEqual(h.proxy.storeCounts(), { descriptors: 0, fsmeta: 0 });
    // The proxy keeps serving: the same image through the pass-through profile works.
    const host = await unpack(h, caseLayers('basic'), { profile: 'erofs-vmdk-host', fsmeta: fixture('bad-inputs', 'extra-devices-3.erofs') });
    assert.equal((await h.proxy.prepare(NS, 'erofs-vmdk-host', nextKey(), host, {}))[0].type, 'erofs');
  });

  it('plain lowers while native merge is not built: FailedPrecondition saying fsmerge metadata is missing', async () => {
    const unbuilt = startHarness({ deps: { mergeLayers: () => { throw new MergeError('not-built', 'native fsmerge is not built yet'); } } });
    try {
      const top = await unpack(unbuilt, caseLayers('basic'));
      await assert.rejects(unbuilt.proxy.prepare(NS, 'erofs-vmdk', nextKey(), top, {}),
        expectKind('FailedPrecondition', /fsmerge metadata is missing.*native merge is not built/s));
      assert.equal(unbuilt.outcomes.at(-1), 'refused');
    } finally {
      await unbuilt.close();
    }
  });

  it('a mount path with a double quote or a newline is InvalidArgument naming the key', async () => {
    for (const bad of ['/tmp/la"yer.erofs', '/tmp/la\nyer.erofs']) {
      const top = await unpack(h, [caseLayers('single')[0]]);
      const key = nextKey('hostile');
      h.backend.overrides.set(`erofs-vmdk/${key}`, [{ type: 'erofs', source: bad, target: '', options: ['ro', 'loop'] }]);
      await assert.rejects(h.proxy.view(NS, 'erofs-vmdk', key, top, {}), expectKind('InvalidArgument', new RegExp(key)));
    }
  });

  it('a missing layer file is FailedPrecondition naming it', async () => {
    const top = await unpack(h, [caseLayers('single')[0]]);
    const key = nextKey('missing');
    h.backend.overrides.set(`erofs-vmdk/${key}`, [{ type: 'erofs', source: '/nonexistent/layer.erofs', target: '', options: ['ro', 'loop'] }]);
    await assert.rejects(h.proxy.view(NS, 'erofs-vmdk', key, top, {}), expectKind('FailedPrecondition', /nonexistent\/layer\.erofs/));
  });
});
