/**
 * Crash safety of the embedded backend inside the real daemon: a client runs
 * a Prepare / write / Commit / Remove loop over gRPC while the daemon is
 * killed with SIGKILL at a random moment, 20 times. After each restart the
 * database and the directories must agree (every listed snapshot has its
 * directory, committed ones a valid layer.erofs mounted on fs/ in legacy
 * style), and after Cleanup no directory is left without a snapshot.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { startDaemon, type SnapshotsTestClient } from '../support/daemon';
import { inconsistencies } from './helpers';

const PROFILE = 'erofs-vmdk-host';
const KILLS = 20;

interface Model {
  committed: string[];
  children: Map<string, number>;
}

/** Rebuilds what exists from the daemon itself: after a crash the last call may or may not have happened. */
async function modelFrom(client: SnapshotsTestClient): Promise<Model> {
  const infos = await client.list({ snapshotter: PROFILE }, { namespace: 'crash' });
  const model: Model = { committed: [], children: new Map() };
  for (const i of infos) {
    if (i.kind === 3) model.committed.push(i.name);
    if (i.parent) model.children.set(i.parent, (model.children.get(i.parent) ?? 0) + 1);
  }
  return model;
}

/** Writes a few files into the writable layer of a mount list (bind source or overlay upperdir). */
function writeInto(mounts: { type: string; source: string; options: string[] }[], round: number, i: number): void {
  const last = mounts[mounts.length - 1];
  const upper = last.type === 'bind' ? last.source : last.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
  fs.mkdirSync(path.join(upper, `dir-${i % 3}`), { recursive: true });
  fs.writeFileSync(path.join(upper, `dir-${i % 3}`, `file-${round}-${i}`), Buffer.alloc(randomInt(1, 200_000), i));
}

/** The churn loop; resolves when a call fails after `killed()` became true, rejects on any earlier failure. */
async function churn(client: SnapshotsTestClient, model: Model, round: number, killed: () => boolean): Promise<number> {
  const o = { namespace: 'crash' };
  let ops = 0;
  for (let i = 0; ; i++) {
    try {
      const r = Math.random();
      if (r < 0.7 || model.committed.length < 2) {
        const parent = model.committed.length > 0 && Math.random() < 0.7 ? model.committed[randomInt(model.committed.length)] : '';
        const key = `crash/${round}/${i}/active`;
        const mounts = await client.prepare({ snapshotter: PROFILE, key, parent }, o);
        // Active or committed, it is a child of `parent` from now on (some stay active).
        if (parent) model.children.set(parent, (model.children.get(parent) ?? 0) + 1);
        writeInto(mounts, round, i);
        if (Math.random() < 0.85) {
          const name = `crash/${round}/${i}`;
          await client.commit({ snapshotter: PROFILE, name, key }, o);
          model.committed.push(name);
        }
      } else {
        const leaves = model.committed.filter((c) => !model.children.get(c));
        if (leaves.length > 0) {
          const victim = leaves[randomInt(leaves.length)];
          await client.remove({ snapshotter: PROFILE, key: victim }, o);
          model.committed = model.committed.filter((c) => c !== victim);
        }
      }
      ops++;
    } catch (err) {
      if (killed()) return ops;
      throw err;
    }
  }
}

test(`SIGKILL during a Prepare/Commit/Remove loop (${KILLS} times): database and directories always agree`, async () => {
  const d = await startDaemon({ backend: 'embedded', logLevel: 'warn', config: { embedded: { mount_style: 'legacy' } } });
  const root = path.join(d.root, 'embedded');
  let totalOps = 0;
  try {
    for (let round = 0; round < KILLS; round++) {
      const model = await modelFrom(d.client);
      let killed = false;
      const loop = churn(d.client, model, round, () => killed);
      await new Promise((r) => setTimeout(r, randomInt(50, 600)));
      killed = true;
      await d.kill();
      totalOps += await loop;
      await d.start();
      assert.deepEqual(inconsistencies(root, { noOrphans: false, legacyMounted: true }), [], `after kill ${round + 1}`);
      await d.client.cleanup({ snapshotter: PROFILE }, { namespace: null });
      assert.deepEqual(inconsistencies(root, { noOrphans: true, legacyMounted: true }), [], `after kill ${round + 1} and Cleanup`);
    }
    // The loop really ran between the kills (the test cannot pass by doing nothing).
    assert.ok(totalOps >= KILLS, `only ${totalOps} operations completed`);
    const left = await d.client.list({ snapshotter: PROFILE }, { namespace: 'crash' });
    assert.ok(left.length > 0);
  } finally {
    await d.close();
  }
});
