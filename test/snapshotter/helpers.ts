import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import type { CallContext } from '../../src/backend/backend';
import { SnapshotterError } from '../../src/errdefs';
import { ProxySnapshotter, type ProxyOptions, type RewriteOutcome } from '../../src/snapshotter/proxy';
import type { FlatDiskDeps } from '../../src/snapshotter/flat-disk-builder';
import { prepareFlatDisk } from '../../src/erofs/flat-layout';
import { mergeLayers } from '../../src/merge';
import { renderDescriptor } from '../../src/vmdk';
import { fixture } from '../support/fixtures';
import { FakeBackend, FSMETA_LABEL, LAYER_LABEL } from './fake-backend';

export const NS: CallContext = { namespace: 'default' };
// The proxy-core suites specify contract v1 shapes; contract v2 has its own (proxy-contract-v2.test.ts).
export const PROFILES = { 'erofs-vmdk': { rewrite: true, contract: 1 as const }, 'erofs-vmdk-host': { rewrite: false } };

export interface Harness {
  root: string;
  backend: FakeBackend;
  proxy: ProxySnapshotter;
  outcomes: RewriteOutcome[];
  logs: Record<string, unknown>[];
  /** A new proxy on the same root and backend (the old one is closed without closing the backend). */
  restart(): ProxySnapshotter;
  close(): Promise<void>;
}

export const realDeps: FlatDiskDeps = { prepareFlatDisk, renderDescriptor: (e) => renderDescriptor(e), mergeLayers };

export function startHarness(options: { backend?: FakeBackend; deps?: Partial<FlatDiskDeps>; revalidateMs?: number; profiles?: ProxyOptions['profiles'] } = {}): Harness {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'erofs-vmdk-proxy-'));
  const backend = options.backend ?? new FakeBackend();
  const outcomes: RewriteOutcome[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const make = () => new ProxySnapshotter(
    { root, backend, profiles: options.profiles ?? PROFILES, logger, observer: { onRewrite: (o) => void outcomes.push(o) } },
    { deps: { ...realDeps, ...options.deps }, revalidateMs: options.revalidateMs },
  );
  const h: Harness = {
    root, backend, outcomes, logs,
    proxy: make(),
    restart() {
      h.proxy.store.close();
      h.proxy = make();
      return h.proxy;
    },
    async close() {
      await h.proxy.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
  return h;
}

let seq = 100;

/**
 * Unpacks layers (bottom first) the way containerd does: an extract-… Prepare
 * on the previous chain, then Commit with the layer's blob (and, on the top
 * layer, an fsmeta covering the whole chain). Returns the top committed name.
 */
export async function unpack(h: Harness, layers: string[], options: { profile?: string; fsmeta?: string } = {}): Promise<string> {
  const profile = options.profile ?? 'erofs-vmdk';
  let parent = '';
  for (const [i, layer] of layers.entries()) {
    const n = ++seq;
    const key = `default/${n}/extract-${n}-AbCd sha256:chain${n}`;
    const name = `default/${n}/sha256:chain${n}`;
    await h.proxy.prepare(NS, profile, key, parent, {});
    const labels: Record<string, string> = { [LAYER_LABEL]: layer };
    if (options.fsmeta && i === layers.length - 1) labels[FSMETA_LABEL] = options.fsmeta;
    await h.proxy.commit(NS, profile, name, key, labels, '');
    parent = name;
  }
  return parent;
}

export function caseLayers(caseName: string): string[] {
  return fs.readFileSync(fixture(caseName, 'layers.txt'), 'utf8').trim().split('\n').map((l) => fixture(caseName, l.trim()));
}

export function nextKey(what = 'container'): string {
  return `default/${++seq}/${what}`;
}

/** assert.rejects predicate: a SnapshotterError of `kind` whose message matches `message`. */
export function expectKind(kind: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof SnapshotterError, String(err));
    assert.equal(err.kind, kind, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}
