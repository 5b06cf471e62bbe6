/** Descriptor and private-fsmeta store with SQLite references: see store.ts. */
export { Store, sha256, DESCRIPTOR_DIR, FSMETA_DIR, STATE_DB, type GcResult, type StoreCounts } from './store';
export type { KeyReferences } from './references';
