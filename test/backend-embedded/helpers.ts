/**
 * Shared helpers of the embedded backend tests: a backend in a temp dir that
 * is always torn down (legacy layer mounts included), and a checker that the
 * database and the directories agree.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { createEmbeddedBackend } from '../../src/backend/embedded';
import type { Backend } from '../../src/backend/backend';
import { mountPoints, mountsUnder, unmountUnder } from '../../src/backend/embedded/host-mounts';

export const ctx = { namespace: 'test' };

export interface TempBackend {
  root: string;
  backend: Backend;
  reopen(): Promise<Backend>;
}

export async function withBackend<T>(
  options: { mountStyle?: 'legacy' | 'manager'; defaultSize?: number },
  body: (t: TempBackend) => Promise<T>,
): Promise<T> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eb-'));
  const root = path.join(tmp, 'root');
  const open = () =>
    createEmbeddedBackend({ root, mountStyle: options.mountStyle ?? 'legacy', defaultSize: options.defaultSize, logger: pino({ level: 'silent' }) });
  let t: TempBackend | undefined;
  try {
    const self: TempBackend = {
      root,
      backend: await open(),
      reopen: async () => {
        await self.backend.close();
        self.backend = await open();
        return self.backend;
      },
    };
    t = self;
    return await body(self);
  } finally {
    await t?.backend.close();
    unmountUnder(tmp);
    if (mountsUnder(tmp).length === 0) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export const EROFS_MAGIC = 0xe0f5e1e2;

export function isErofsImage(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 1024) === 4 && b.readUInt32LE(0) === EROFS_MAGIC;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Every problem found between snapshots.db and <root>/snapshots (empty list =
 * they agree): each row has its directory, committed rows a valid
 * layer.erofs, active rows fs/ and the .erofslayer marker; with
 * `noOrphans`, every directory belongs to a row (what Cleanup guarantees);
 * with `legacyMounted`, each committed layer is mounted on its fs/.
 */
export function inconsistencies(root: string, opts: { noOrphans: boolean; legacyMounted: boolean }): string[] {
  const problems: string[] = [];
  const db = new Database(path.join(root, 'snapshots.db'), { readonly: true, fileMustExist: true });
  let rows: { id: number; key: string; kind: string }[];
  try {
    rows = db.prepare('SELECT id, key, kind FROM snapshots').all() as typeof rows;
  } finally {
    db.close();
  }
  const mounted = new Set(mountPoints());
  const snapshots = path.join(root, 'snapshots');
  const ids = new Set<string>();
  for (const r of rows) {
    const dir = path.join(snapshots, String(r.id));
    ids.add(String(r.id));
    if (!fs.existsSync(dir)) {
      problems.push(`${r.key} (${r.kind}, id ${r.id}): directory missing`);
      continue;
    }
    if (r.kind === 'committed') {
      const layer = path.join(dir, 'layer.erofs');
      if (!fs.existsSync(layer)) problems.push(`${r.key}: committed without layer.erofs`);
      else if (!isErofsImage(layer)) problems.push(`${r.key}: layer.erofs is not an EROFS image`);
      if (opts.legacyMounted && !mounted.has(path.join(dir, 'fs'))) problems.push(`${r.key}: layer.erofs not mounted on fs/`);
    }
    if (r.kind === 'active') {
      if (!fs.existsSync(path.join(dir, 'fs'))) problems.push(`${r.key}: active without fs/`);
      if (!fs.existsSync(path.join(dir, '.erofslayer'))) problems.push(`${r.key}: active without .erofslayer`);
    }
  }
  if (opts.noOrphans) {
    for (const name of fs.readdirSync(snapshots)) {
      if (!ids.has(name)) problems.push(`directory snapshots/${name} has no snapshot`);
    }
  }
  return problems;
}
