/**
 * Snapshot metadata in SQLite (better-sqlite3, WAL), with the semantics of
 * containerd's snapshot storage (core/snapshots/storage): a key exists once
 * across kinds, a parent must be committed, Commit turns an active snapshot
 * into a committed one under a new name keeping its numeric id (= its
 * directory), Remove refuses snapshots with children, Update only touches
 * labels. Every mutation runs in one SQLite transaction; callers that must
 * also move a directory do it inside the transaction callback (see
 * embedded-backend.ts for the ordering that keeps the database and the
 * directories in agreement across a crash).
 */
import Database from 'better-sqlite3';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '../../errdefs';
import type { SnapshotInfo, SnapshotKind } from '../backend';

export type StoredKind = Exclude<SnapshotKind, 'unknown'>;

export interface SnapshotRecord {
  id: number;
  key: string;
  parentId: number | null;
  parentKey: string;
  kind: StoredKind;
  labels: Record<string, string>;
  createdMs: number;
  updatedMs: number;
  size: number;
  inodes: number;
}

interface Row {
  id: number;
  key: string;
  parent_id: number | null;
  parent_key: string | null;
  kind: StoredKind;
  labels: string;
  created_ms: number;
  updated_ms: number;
  size: number;
  inodes: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  key        TEXT    NOT NULL UNIQUE,
  parent_id  INTEGER REFERENCES snapshots(id),
  kind       TEXT    NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
  labels     TEXT    NOT NULL DEFAULT '{}',
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  size       INTEGER NOT NULL DEFAULT 0,
  inodes     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

const SELECT = `SELECT s.id, s.key, s.parent_id, p.key AS parent_key, s.kind, s.labels, s.created_ms, s.updated_ms, s.size, s.inodes
  FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

/** containerd drops labels with an empty value instead of storing them. */
export function normalizeLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (typeof k !== 'string' || k.length === 0) throw invalidArgument('label keys must not be empty');
    if (typeof v !== 'string') throw invalidArgument(`label ${JSON.stringify(k)} must have a string value`);
    if (v !== '') out[k] = v;
  }
  return out;
}

export function toInfo(r: SnapshotRecord): SnapshotInfo {
  return {
    name: r.key,
    parent: r.parentKey,
    kind: r.kind,
    labels: { ...r.labels },
    createdAt: new Date(r.createdMs),
    updatedAt: new Date(r.updatedMs),
  };
}

function fromRow(row: Row): SnapshotRecord {
  return {
    id: row.id,
    key: row.key,
    parentId: row.parent_id,
    parentKey: row.parent_key ?? '',
    kind: row.kind,
    labels: JSON.parse(row.labels) as Record<string, string>,
    createdMs: row.created_ms,
    updatedMs: row.updated_ms,
    size: row.size,
    inodes: row.inodes,
  };
}

export class MetadataStore {
  private readonly db: Database.Database;
  private readonly stmts;
  private closed = false;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed transaction survives power loss, not only a process crash.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.stmts = {
      byKey: this.db.prepare<[string], Row>(`${SELECT} WHERE s.key = ?`),
      byId: this.db.prepare<[number], Row>(`${SELECT} WHERE s.id = ?`),
      // Every ancestor of a snapshot, nearest first, in one statement: Mounts
      // of a deep image would otherwise cost one query per layer.
      ancestors: this.db.prepare<[number], Row>(
        `WITH RECURSIVE chain(id, depth) AS (
           SELECT parent_id, 1 FROM snapshots WHERE id = ? AND parent_id IS NOT NULL
           UNION ALL
           SELECT s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.id WHERE s.parent_id IS NOT NULL
         )
         SELECT s.id, s.key, s.parent_id, p.key AS parent_key, s.kind, s.labels, s.created_ms, s.updated_ms, s.size, s.inodes
           FROM chain c JOIN snapshots s ON s.id = c.id LEFT JOIN snapshots p ON p.id = s.parent_id
          ORDER BY c.depth`,
      ),
      all: this.db.prepare<[], Row>(SELECT),
      insert: this.db.prepare(
        'INSERT INTO snapshots (key, parent_id, kind, labels, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      children: this.db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM snapshots WHERE parent_id = ?'),
      remove: this.db.prepare('DELETE FROM snapshots WHERE id = ?'),
      commit: this.db.prepare(
        "UPDATE snapshots SET key = ?, kind = 'committed', parent_id = ?, labels = ?, created_ms = ?, updated_ms = ?, size = ?, inodes = ? WHERE id = ?",
      ),
      updateLabels: this.db.prepare('UPDATE snapshots SET labels = ?, updated_ms = ? WHERE id = ?'),
      ids: this.db.prepare<[], { id: number }>('SELECT id FROM snapshots'),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw failedPrecondition(`snapshots.db has schema version ${version}, newer than this erofs-vmdk (${SCHEMA_VERSION})`);
    }
    this.db.exec(SCHEMA);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  get(key: string): SnapshotRecord | undefined {
    const row = this.stmts.byKey.get(key);
    return row ? fromRow(row) : undefined;
  }

  getById(id: number): SnapshotRecord | undefined {
    const row = this.stmts.byId.get(id);
    return row ? fromRow(row) : undefined;
  }

  mustGet(key: string): SnapshotRecord {
    const r = this.get(key);
    if (!r) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
    return r;
  }

  all(): SnapshotRecord[] {
    return this.stmts.all.all().map(fromRow);
  }

  ids(): Set<number> {
    return new Set(this.stmts.ids.all().map((r) => r.id));
  }

  /** Ids of the parent chain, top (direct parent) first. */
  parentChain(record: SnapshotRecord): SnapshotRecord[] {
    const chain = this.stmts.ancestors.all(record.id).map(fromRow);
    // The chain stops early when a parent row is missing: its child's parentId still points somewhere.
    const last = chain.length > 0 ? chain[chain.length - 1] : record;
    if (last.parentId !== null) {
      throw failedPrecondition(`snapshot ${JSON.stringify(record.key)}: parent id ${last.parentId} is missing from the database`);
    }
    return chain;
  }

  /** Runs fn in one write transaction (BEGIN IMMEDIATE); a throw rolls everything back. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /**
   * Inserts a new active or view snapshot. `placeDirectory(id)` runs inside the
   * transaction before it commits: it moves the prepared directory into place.
   */
  create(kind: 'active' | 'view', key: string, parent: string, labels: Record<string, string>, placeDirectory: (id: number) => void): SnapshotRecord {
    return this.transaction(() => {
      if (this.get(key)) throw alreadyExists(`snapshot ${JSON.stringify(key)} already exists`);
      let parentId: number | null = null;
      if (parent !== '') {
        const p = this.get(parent);
        if (!p) throw notFound(`parent snapshot ${JSON.stringify(parent)} does not exist`);
        if (p.kind !== 'committed') throw invalidArgument(`parent ${JSON.stringify(parent)} is not a committed snapshot (it is ${p.kind})`);
        parentId = p.id;
      }
      const now = Date.now();
      const result = this.stmts.insert.run(key, parentId, kind, JSON.stringify(labels), now, now);
      const id = Number(result.lastInsertRowid);
      placeDirectory(id);
      return this.getById(id)!;
    });
  }

  /** Checks that `key` can be committed as `name` (used before the slow conversion). */
  checkCommit(name: string, key: string): SnapshotRecord {
    const existing = this.get(name);
    if (existing) throw alreadyExists(`cannot commit ${JSON.stringify(key)}: snapshot ${JSON.stringify(name)} already exists`);
    const active = this.get(key);
    if (!active) throw notFound(`cannot commit: active snapshot ${JSON.stringify(key)} does not exist`);
    if (active.kind !== 'active') throw failedPrecondition(`cannot commit ${JSON.stringify(key)}: it is a ${active.kind} snapshot, not an active one`);
    return active;
  }

  /**
   * Turns the active snapshot `key` (with id `id`) into the committed `name`.
   * Labels are replaced, not inherited (as containerd does). `parent`, when
   * not empty, rebases the snapshot (CommitSnapshotRequest.parent).
   * `beforeCommit` runs inside the transaction (moves the converted blob in).
   */
  commit(name: string, key: string, id: number, labels: Record<string, string>, parent: string, usage: { size: number; inodes: number }, beforeCommit: () => void): SnapshotRecord {
    return this.transaction(() => {
      const active = this.checkCommit(name, key);
      if (active.id !== id) throw failedPrecondition(`cannot commit ${JSON.stringify(key)}: it was removed and re-created during the commit`);
      let parentId = active.parentId;
      if (parent !== '' && parent !== active.parentKey) {
        if (active.parentId !== null) {
          throw failedPrecondition(`cannot commit ${JSON.stringify(key)} onto parent ${JSON.stringify(parent)}: it already has parent ${JSON.stringify(active.parentKey)}`);
        }
        const p = this.get(parent);
        if (!p) throw notFound(`cannot commit ${JSON.stringify(key)}: parent snapshot ${JSON.stringify(parent)} does not exist`);
        if (p.kind !== 'committed') throw invalidArgument(`parent ${JSON.stringify(parent)} is not a committed snapshot (it is ${p.kind})`);
        parentId = p.id;
      }
      const now = Date.now();
      this.stmts.commit.run(name, parentId, JSON.stringify(labels), now, now, usage.size, usage.inodes, id);
      beforeCommit();
      return this.getById(id)!;
    });
  }

  /** Deletes `key`; refuses when it has children. `beforeCommit` runs inside the transaction. */
  remove(key: string, beforeCommit: (record: SnapshotRecord) => void): SnapshotRecord {
    return this.transaction(() => {
      const r = this.mustGet(key);
      const { n } = this.stmts.children.get(r.id)!;
      if (n > 0) throw failedPrecondition(`cannot remove snapshot ${JSON.stringify(key)}: it has ${n} child snapshot(s)`);
      beforeCommit(r);
      this.stmts.remove.run(r.id);
      return r;
    });
  }

  /**
   * containerd's UpdateInfo: no field paths replaces all labels; `labels`
   * does the same; `labels.<k>` sets (or, when absent from info, deletes) one
   * label; anything else is InvalidArgument. name, parent, kind and created
   * never change; updated is set to now.
   */
  update(info: SnapshotInfo, fieldPaths: string[]): SnapshotRecord {
    return this.transaction(() => {
      const r = this.mustGet(info.name);
      const given = normalizeLabels(info.labels);
      let labels: Record<string, string>;
      if (fieldPaths.length === 0) {
        labels = given;
      } else {
        labels = { ...r.labels };
        for (const path of fieldPaths) {
          if (path.startsWith('labels.')) {
            const k = path.slice('labels.'.length);
            if (k === '') throw invalidArgument(`cannot update field path ${JSON.stringify(path)} on snapshot ${JSON.stringify(info.name)}: empty label key`);
            if (Object.prototype.hasOwnProperty.call(given, k)) labels[k] = given[k];
            else delete labels[k];
          } else if (path === 'labels') {
            labels = { ...given };
          } else {
            throw invalidArgument(`cannot update field path ${JSON.stringify(path)} on snapshot ${JSON.stringify(info.name)}: only labels and labels.<key> are mutable`);
          }
        }
      }
      this.stmts.updateLabels.run(JSON.stringify(labels), Date.now(), r.id);
      return this.getById(r.id)!;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
