/**
 * The embedded EROFS backend (default backend of `erofs-vmdk serve`).
 * See docs/embedded-backend.md and embedded-backend.ts for the protocol.
 */
import type { Backend } from '../backend';
import { EmbeddedBackend, type EmbeddedBackendOptions } from './embedded-backend';

export { EmbeddedBackend, unmountLegacyLayers, type EmbeddedBackendOptions } from './embedded-backend';
export type { MountStyle } from './mount-shapes';
export { parseFilter, parseFilters, matchesAny } from './filters';

/** Opens (creating if needed) the backend at options.root, reconciling it after a crash. */
export function createEmbeddedBackend(options: EmbeddedBackendOptions): Promise<Backend> {
  return EmbeddedBackend.open(options);
}
