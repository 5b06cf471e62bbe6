/**
 * The whole daemon, assembled from a validated Config: state dir, backend,
 * proxy core, gRPC server (+ health), optional metrics endpoint, and an
 * orderly stop that keeps all state on disk.
 */
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend';
import type { Config } from '../config';
import { createBackend, loadProxyFactory, type ProxySnapshotter } from './components';
import { DaemonMetrics, type MetricsEndpoint, serveMetrics } from './metrics';
import { type RunningServer, startSnapshotsServer } from './server';
import { prepareRootDir } from './socket';

export interface RunningDaemon {
  server: RunningServer;
  metrics: DaemonMetrics;
  metricsEndpoint?: MetricsEndpoint;
  /** Graceful stop: no new calls, in-flight calls bounded by shutdown_timeout_ms, then close everything. */
  stop(): Promise<void>;
}

export async function startDaemon(config: Config, logger: Logger): Promise<RunningDaemon> {
  prepareRootDir(config.root);
  const createProxy = loadProxyFactory();
  const metrics = new DaemonMetrics();
  let backend: Backend | undefined;
  let proxy: ProxySnapshotter | undefined;
  let server: RunningServer | undefined;
  let metricsEndpoint: MetricsEndpoint | undefined;
  try {
    backend = await createBackend(config, logger, metrics);
    proxy = createProxy({ root: config.root, backend, profiles: config.profiles, logger, observer: metrics });
    const store = proxy;
    metrics.setStoreCounts(() => store.storeCounts());
    server = await startSnapshotsServer({ address: config.address, snapshotter: proxy, logger, metrics });
    if (config.metrics_address !== '') metricsEndpoint = await serveMetrics(metrics, config.metrics_address, logger);
  } catch (err) {
    // Undo what was started so a failed start leaves no socket or open database behind.
    await server?.shutdown(0);
    if (proxy) await proxy.close();
    else await backend?.close();
    throw err;
  }
  const running = server;
  const core = proxy;
  logger.info({ root: config.root, backend: config.backend, profiles: Object.keys(config.profiles) }, 'erofs-vmdk started');
  return {
    server: running,
    metrics,
    metricsEndpoint,
    async stop() {
      const { forced } = await running.shutdown(config.shutdown_timeout_ms);
      await metricsEndpoint?.close();
      await core.close(); // closes the store and the backend
      logger.info({ forced }, 'erofs-vmdk stopped; state kept');
    },
  };
}
