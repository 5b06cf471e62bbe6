/**
 * The parts the daemon is assembled from: the backend (embedded or remote)
 * and the proxy core (profiles, rewrite, store).
 */
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend';
import { createEmbeddedBackend } from '../backend/embedded';
import { createRemoteBackend } from '../backend/remote';
import type { Config } from '../config';
import { createProxySnapshotter, type ProxySnapshotterApi } from '../snapshotter/proxy';
import type { DaemonMetrics } from './metrics';

export type ProxySnapshotter = ProxySnapshotterApi;

export function loadProxyFactory(): typeof createProxySnapshotter {
  return createProxySnapshotter;
}

export async function createBackend(config: Config, logger: Logger, metrics?: DaemonMetrics): Promise<Backend> {
  if (config.backend === 'remote') {
    return createRemoteBackend({
      address: config.remote.address,
      snapshotter: config.remote.snapshotter,
      connectTimeoutMs: config.remote.connect_timeout_ms,
      callTimeoutMs: config.remote.call_timeout_ms,
      mountsCacheTtlMs: config.remote.mounts_cache_ttl_ms,
      onMountsCache: metrics && ((result) => metrics.onUpstreamMountsCache(result)),
      logger: logger.child({ component: 'remote-backend' }),
    });
  }
  return createEmbeddedBackend({
    // A sub-directory keeps its layout (snapshots/, its own database) apart from the proxy's state.db, vmdk/ and fsmeta/.
    root: path.join(config.root, 'embedded'),
    mountStyle: config.embedded.mount_style,
    defaultSize: config.embedded.default_size > 0 ? config.embedded.default_size : undefined,
    logger: logger.child({ component: 'embedded-backend' }),
  });
}
