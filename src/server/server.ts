/**
 * The gRPC server on the daemon's unix socket: Snapshots + grpc.health.v1.
 * Shutdown is graceful and bounded: stop accepting, let in-flight calls
 * finish for up to `timeoutMs`, then cancel what is left.
 */
import * as fs from 'node:fs';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { SnapshotsService } from '../../api/gen/containerd/services/snapshots/v1/snapshots';
import { HealthService } from '../../api/gen/grpc/health/v1/health';
import type { ProfiledSnapshotter } from '../snapshotter/snapshotter';
import { HealthState } from './health';
import type { DaemonMetrics } from './metrics';
import { createSnapshotsService } from './snapshots-service';
import { prepareSocketPath } from './socket';

/**
 * containerd's gRPC clients send messages of up to 16 MiB
 * (defaults.DefaultMaxSendMsgSize); anything larger is refused by grpc-js with
 * RESOURCE_EXHAUSTED ("Received message larger than max") before decoding.
 */
export const MAX_MESSAGE_BYTES = 16 << 20;

export interface SnapshotsServerOptions {
  /** Absolute unix socket path. */
  address: string;
  snapshotter: ProfiledSnapshotter;
  logger: Logger;
  metrics?: DaemonMetrics;
  maxMessageBytes?: number;
}

export interface RunningServer {
  address: string;
  health: HealthState;
  /** Resolves once the server is down; `forced` when calls had to be cancelled. */
  shutdown(timeoutMs: number): Promise<{ forced: boolean }>;
}

function bind(server: Server, address: string): Promise<void> {
  // Create the socket 0660 from the start (no window with a wider mode).
  const previous = process.umask(0o117);
  return new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  }).finally(() => process.umask(previous));
}

export async function startSnapshotsServer(options: SnapshotsServerOptions): Promise<RunningServer> {
  const { address, logger } = options;
  const maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  await prepareSocketPath(address);
  const server = new Server({
    // channelz bookkeeping costs time on every call and nothing here reads it.
    'grpc.enable_channelz': 0,
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  const inflight = new Set<AbortController>();
  const health = new HealthState();
  server.addService(SnapshotsService, createSnapshotsService({ snapshotter: options.snapshotter, logger, metrics: options.metrics, inflight }));
  server.addService(HealthService, health.implementation);
  try {
    await bind(server, address);
  } catch (err) {
    throw new Error(`cannot listen on unix socket ${address}: ${(err as Error).message}`);
  }
  fs.chmodSync(address, 0o660);
  logger.info({ address }, 'serving containerd.services.snapshots.v1.Snapshots');

  return {
    address,
    health,
    shutdown(timeoutMs: number) {
      health.setNotServing();
      return new Promise((resolve) => {
        let forced = false;
        const timer = setTimeout(() => {
          forced = true;
          logger.warn({ inflight: inflight.size, timeout_ms: timeoutMs }, 'shutdown: in-flight calls did not finish in time; cancelling them');
          for (const a of inflight) a.abort(new Error('daemon shutting down'));
          server.forceShutdown();
          resolve({ forced });
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve({ forced });
        });
      });
    },
  };
}
