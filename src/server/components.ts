/**
 * The parts the daemon is assembled from: the backend (embedded or remote)
 * and the proxy core (profiles, rewrite, store). The embedded backend is
 * loaded at run time by its documented entry point so this file compiles
 * whether or not it exists yet; a missing one is a clear start-up error
 * instead of a stub.
 */
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend';
import { createRemoteBackend } from '../backend/remote';
import type { Config } from '../config';
import { createProxySnapshotter, type ProxySnapshotterApi } from '../snapshotter/proxy';

export type ProxySnapshotter = ProxySnapshotterApi;

/** src/backend/embedded/index.ts. */
type CreateEmbeddedBackend = (options: {
  root: string;
  mountStyle: 'legacy' | 'manager';
  defaultSize?: number;
  logger: Logger;
}) => Promise<Backend> | Backend;

function isModuleMissing(err: unknown, request: string): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(request);
}

function loadExport<T>(relative: string, exportName: string, missing: string): T {
  const request = path.join(__dirname, relative);
  let mod: Record<string, unknown>;
  try {
    mod = require(request) as Record<string, unknown>;
  } catch (err) {
    if (isModuleMissing(err, request)) throw new Error(missing);
    throw err;
  }
  const fn = mod[exportName];
  if (typeof fn !== 'function') throw new Error(`${request} does not export ${exportName}(); ${missing}`);
  return fn as T;
}

export function loadProxyFactory(): typeof createProxySnapshotter {
  return createProxySnapshotter;
}

export async function createBackend(config: Config, logger: Logger): Promise<Backend> {
  if (config.backend === 'remote') {
    return createRemoteBackend({
      address: config.remote.address,
      snapshotter: config.remote.snapshotter,
      connectTimeoutMs: config.remote.connect_timeout_ms,
      callTimeoutMs: config.remote.call_timeout_ms,
      logger: logger.child({ component: 'remote-backend' }),
    });
  }
  const create = loadExport<CreateEmbeddedBackend>(
    '../backend/embedded',
    'createEmbeddedBackend',
    'the embedded backend (src/backend/embedded) is not built yet; set backend = "remote" with [remote] address = <socket of another snapshotter> (or --backend remote --remote-address PATH)',
  );
  return create({
    // A sub-directory keeps its layout (snapshots/, its own database) apart from the proxy's state.db, vmdk/ and fsmeta/.
    root: path.join(config.root, 'embedded'),
    mountStyle: config.embedded.mount_style,
    defaultSize: config.embedded.default_size > 0 ? config.embedded.default_size : undefined,
    logger: logger.child({ component: 'embedded-backend' }),
  });
}
