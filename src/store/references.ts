/**
 * References from (profile, key) to store files, in SQLite (`<root>/state.db`).
 *
 * A snapshot key references the descriptor its mounts point at and any private
 * fsmeta that descriptor uses. Files nobody references are garbage. Rows are
 * replaced per key in one transaction, so a key always references one complete
 * set. An in-memory mirror lets the hot path (Mounts of a key whose references
 * did not change) skip the database entirely.
 */
import Database from 'better-sqlite3';

const SCHEMA_VERSION = 1;

export interface KeyReferences {
  files: string[];
  /** When this set was recorded (ms since epoch). */
  recordedAt: number;
}

const mirrorKey = (profile: string, key: string) => `${profile}\u0000${key}`;

export class ReferenceTable {
  private readonly db: Database.Database;
  private readonly mirror = new Map<string, KeyReferences>();
  private readonly insert: Database.Statement;
  private readonly deleteKey: Database.Statement;
  private readonly replaceTx: (profile: string, key: string, files: string[], now: number) => void;

  constructor(file: string) {
    this.db = new Database(file);
    // WAL: readers never block the writer; busy_timeout: a concurrent opener
    // (e.g. an operator's sqlite3 shell) waits instead of failing the RPC.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    // FULL: a recorded reference survives power loss, so GC never deletes a
    // descriptor a running VM was handed.
    this.db.pragma('synchronous = FULL');
    this.migrate();
    this.insert = this.db.prepare('INSERT OR IGNORE INTO refs (profile, key, file, recorded_at) VALUES (?, ?, ?, ?)');
    this.deleteKey = this.db.prepare('DELETE FROM refs WHERE profile = ? AND key = ?');
    this.replaceTx = this.db.transaction((profile: string, key: string, files: string[], now: number) => {
      this.deleteKey.run(profile, key);
      for (const f of files) this.insert.run(profile, key, f, now);
    });
    this.loadMirror();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`state database schema version ${version} is newer than this erofs-vmdk understands (${SCHEMA_VERSION})`);
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS refs (
        profile TEXT NOT NULL,
        key TEXT NOT NULL,
        file TEXT NOT NULL,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (profile, key, file)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS refs_by_file ON refs (file);
    `);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  private loadMirror(): void {
    const rows = this.db.prepare('SELECT profile, key, file, recorded_at AS recordedAt FROM refs ORDER BY file').all() as {
      profile: string; key: string; file: string; recordedAt: number;
    }[];
    for (const row of rows) {
      const k = mirrorKey(row.profile, row.key);
      const entry = this.mirror.get(k) ?? { files: [], recordedAt: row.recordedAt };
      entry.files.push(row.file);
      entry.recordedAt = Math.max(entry.recordedAt, row.recordedAt);
      this.mirror.set(k, entry);
    }
  }

  /** Makes `files` exactly the set (profile, key) references. Idempotent; no write when unchanged. */
  set(profile: string, key: string, files: string[], now = Date.now()): void {
    const sorted = [...new Set(files)].sort();
    const k = mirrorKey(profile, key);
    const current = this.mirror.get(k);
    if (current && current.files.length === sorted.length && current.files.every((f, i) => f === sorted[i])) return;
    this.replaceTx(profile, key, sorted, now);
    this.mirror.set(k, { files: sorted, recordedAt: now });
  }

  get(profile: string, key: string): KeyReferences | undefined {
    return this.mirror.get(mirrorKey(profile, key));
  }

  drop(profile: string, key: string): void {
    const k = mirrorKey(profile, key);
    if (!this.mirror.has(k)) return;
    this.deleteKey.run(profile, key);
    this.mirror.delete(k);
  }

  /** Keys of a profile that hold references, with when they were recorded. */
  keys(profile: string): { key: string; recordedAt: number }[] {
    const prefix = `${profile}\u0000`;
    const out: { key: string; recordedAt: number }[] = [];
    for (const [k, v] of this.mirror) {
      if (k.startsWith(prefix)) out.push({ key: k.slice(prefix.length), recordedAt: v.recordedAt });
    }
    return out;
  }

  /** Every file referenced by any key. */
  referencedFiles(): Set<string> {
    // Read from the database, not the mirror: GC must follow what is durable.
    const rows = this.db.prepare('SELECT DISTINCT file FROM refs').pluck().all() as string[];
    return new Set(rows);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
