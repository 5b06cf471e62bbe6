/**
 * Prometheus metrics (prom-client, own registry): per-RPC latency and errors,
 * rewrites by outcome, and the store's file counts. The proxy core reports
 * rewrites through the small RewriteObserver interface so it does not depend
 * on prom-client.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { prepareSocketPath } from './socket';

export type RewriteOutcome = 'flat' | 'refused' | 'passthrough';

/** What the proxy core calls once per Prepare/View/Mounts it decided on. */
export interface RewriteObserver {
  onRewrite(outcome: RewriteOutcome): void;
}

export interface StoreCounts {
  descriptors: number;
  fsmeta: number;
}

export class DaemonMetrics implements RewriteObserver {
  readonly registry = new Registry();
  private readonly latency: Histogram<'rpc'>;
  private readonly errors: Counter<'rpc' | 'code'>;
  private readonly rewrites: Counter<'outcome'>;
  private readonly upstreamMountsCache: Counter<'result'>;
  private storeCounts: (() => StoreCounts) | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'erofs_vmdk_' });
    this.latency = new Histogram({
      name: 'erofs_vmdk_grpc_request_duration_seconds',
      help: 'Latency of Snapshots RPCs served, by RPC',
      labelNames: ['rpc'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.errors = new Counter({
      name: 'erofs_vmdk_grpc_errors_total',
      help: 'Snapshots RPCs that failed, by RPC and gRPC status code',
      labelNames: ['rpc', 'code'],
      registers: [this.registry],
    });
    this.rewrites = new Counter({
      name: 'erofs_vmdk_rewrites_total',
      help: 'Mount decisions by outcome: flat (one vmdk mount), refused (error returned), passthrough (mounts unchanged)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    for (const outcome of ['flat', 'refused', 'passthrough'] as const) this.rewrites.inc({ outcome }, 0);
    this.upstreamMountsCache = new Counter({
      name: 'erofs_vmdk_upstream_mounts_cache_total',
      help: 'Mounts calls of the remote backend by result: hit (answered from memory) or miss (asked the upstream)',
      labelNames: ['result'],
      registers: [this.registry],
    });
    const counts = () => this.storeCounts?.();
    new Gauge({
      name: 'erofs_vmdk_store_descriptors',
      help: 'VMDK descriptors in the store',
      registers: [this.registry],
      collect() {
        const c = counts();
        if (c) this.set(c.descriptors);
      },
    });
    new Gauge({
      name: 'erofs_vmdk_store_fsmeta',
      help: 'Private fsmeta copies in the store',
      registers: [this.registry],
      collect() {
        const c = counts();
        if (c) this.set(c.fsmeta);
      },
    });
  }

  observeCall(rpc: string, seconds: number, errorCode?: string): void {
    this.latency.observe({ rpc }, seconds);
    if (errorCode !== undefined) this.errors.inc({ rpc, code: errorCode });
  }

  onRewrite(outcome: RewriteOutcome): void {
    this.rewrites.inc({ outcome });
  }

  onUpstreamMountsCache(result: 'hit' | 'miss'): void {
    this.upstreamMountsCache.inc({ result });
  }

  /** The store's counts are read at scrape time (a callback, not a copy). */
  setStoreCounts(fn: () => StoreCounts): void {
    this.storeCounts = fn;
  }
}

export interface MetricsEndpoint {
  address: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on "host:port" or an absolute unix socket path. */
export async function serveMetrics(metrics: DaemonMetrics, address: string, logger: Logger): Promise<MetricsEndpoint> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404).end('not found; metrics are at /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: Error) => res.writeHead(500).end(`metrics: ${err.message}\n`),
    );
  });
  const isUnix = path.isAbsolute(address);
  if (isUnix) await prepareSocketPath(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (isUnix) {
      server.listen(address, resolve);
    } else {
      const sep = address.lastIndexOf(':');
      const host = address.slice(0, sep).replace(/^\[(.*)\]$/, '$1');
      server.listen(Number(address.slice(sep + 1)), host || undefined, resolve);
    }
  }).catch((err: Error) => {
    throw new Error(`metrics: cannot listen on ${address}: ${err.message}`);
  });
  if (isUnix) fs.chmodSync(address, 0o660);
  const bound = server.address();
  const shown = typeof bound === 'object' && bound ? `${bound.address}:${bound.port}` : address;
  logger.info({ metrics_address: shown }, 'serving Prometheus metrics at /metrics');
  return {
    address: shown,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
