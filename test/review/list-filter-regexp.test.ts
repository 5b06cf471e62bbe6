/**
 * `~=` filters are regular expressions from whoever reaches the socket.
 * containerd matches them with RE2 (linear time); with V8's backtracking
 * engine `name~=^(a|a)*$` against a 40-character name ran for hours and, being
 * synchronous, froze every RPC of the daemon. They are now compiled for V8's
 * linear-time engine, and constructs that need backtracking are InvalidArgument.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { isKind } from '../../src/errdefs';
import { parseFilter } from '../../src/backend/embedded/filters';
import { startDaemon } from '../support/daemon';
import { runScriptBounded } from './bounded-child';

test('a catastrophic-backtracking pattern is matched in linear time', () => {
  const filters = path.join(__dirname, '..', '..', 'src', 'backend', 'embedded', 'filters.js');
  const script = `
    const { parseFilter, matchesFilter } = require(${JSON.stringify(filters)});
    const f = parseFilter('name~=^(a|a)*$');
    const info = (name) => ({ name, parent: '', kind: 'active', labels: {}, createdAt: new Date(0), updatedAt: new Date(0) });
    process.stdout.write(JSON.stringify([matchesFilter(f, info('a'.repeat(40) + '!')), matchesFilter(f, info('a'.repeat(40)))]));`;
  const r = runScriptBounded(script, 10_000);
  assert.equal(r.timedOut, false, 'regexp matching backtracked for more than 10 s');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [false, true]);
});

test('ordinary RE2-compatible patterns keep working', () => {
  const [s] = parseFilter('labels."containerd.io/snapshot.ref"~=^sha256:[0-9a-f]+$');
  assert.equal(s.regexp?.test('sha256:abc123'), true);
  assert.equal(s.regexp?.test('sha256:xyz'), false);
});

test('backreferences and lookaround are InvalidArgument (RE2 has neither)', () => {
  for (const f of ['name~=(a)\\1', 'name~=^(?=a)', 'name~=(?<!x)y']) {
    assert.throws(() => parseFilter(f), (err: unknown) => isKind(err, 'InvalidArgument') && /linear time/.test((err as Error).message), f);
  }
});

test('the daemon keeps answering while a List with a hostile regexp runs', { timeout: 60_000 }, async () => {
  const d = await startDaemon({ backend: 'embedded' });
  try {
    const key = `${'a'.repeat(40)}!`;
    await d.client.prepare({ snapshotter: 'erofs-vmdk', key });
    const listed = d.client.list({ snapshotter: 'erofs-vmdk', filters: ['name~=^(a|a)*$'] }, { timeoutMs: 10_000 });
    const info = await d.client.stat({ snapshotter: 'erofs-vmdk', key }, { timeoutMs: 10_000 });
    assert.equal(info.name, key);
    assert.deepEqual(await listed, []);
    await assert.rejects(d.client.list({ snapshotter: 'erofs-vmdk', filters: ['name~=(a)\\1'] }), (err: { code?: number }) => err.code === 3);
  } finally {
    await d.close();
  }
});
