/**
 * The descriptor store (issue 3 item 6).
 *
 *   <root>/vmdk/<sha256 of the text>.vmdk       flat descriptors
 *   <root>/fsmeta/<sha256>.erofs                 private fsmeta: repaired copies (sha256 of the
 *                                                content) and merged fsmeta (sha256 of the layers'
 *                                                identities, see merged-fsmeta.ts)
 *   <root>/state.db                              references (profile, key) → files
 *
 * Files are written with writeFileAtomic (temp + fsync + rename + dir fsync),
 * never modified in place, and deleted only when no key references them (and
 * no build in progress has pinned them). Leftover temp files of interrupted
 * writes are removed at start-up and on every GC.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { removeLeftoverTempFiles, TEMP_PREFIX, writeFileAtomic } from '../atomic/write-file-atomic';
import { contentAddressedPathProblem } from '../vmdk/paths';
import { ReferenceTable, type KeyReferences } from './references';

export const DESCRIPTOR_DIR = 'vmdk';
export const FSMETA_DIR = 'fsmeta';
export const STATE_DB = 'state.db';

const DESCRIPTOR_NAME = /^[0-9a-f]{64}\.vmdk$/;
const FSMETA_NAME = /^[0-9a-f]{64}\.erofs$/;

export interface StoreCounts {
  descriptors: number;
  fsmeta: number;
}

export interface GcResult {
  /** Store files deleted (relative paths such as `vmdk/<digest>.vmdk`). */
  removed: string[];
  /** Leftover temp files deleted. */
  temps: number;
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function readIfExists(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Private fsmeta copies are descriptor extents: the root must obey the extent path rules. */
function checkRootPath(root: string): void {
  const probe = contentAddressedPathProblem(path.join(root, FSMETA_DIR));
  if (probe) throw new Error(`store root ${JSON.stringify(root)} cannot be used: its files go into VMDK descriptors, and ${probe.message}`);
}

export class Store {
  /** Real path of the root (symlinks resolved): descriptor extents must be canonical. */
  readonly root: string;
  readonly descriptorDir: string;
  readonly fsmetaDir: string;
  private readonly refs: ReferenceTable;
  private readonly pins = new Map<string, number>();

  private constructor(root: string) {
    this.root = root;
    this.descriptorDir = path.join(root, DESCRIPTOR_DIR);
    this.fsmetaDir = path.join(root, FSMETA_DIR);
    this.refs = new ReferenceTable(path.join(root, STATE_DB));
  }

  /** Creates the layout (0700) if needed, opens the database and runs start-up GC. */
  static open(root: string): Store {
    if (!path.isAbsolute(root)) throw new Error(`store root ${JSON.stringify(root)} is not an absolute path`);
    checkRootPath(path.normalize(root)); // before creating anything
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const real = fs.realpathSync(root);
    checkRootPath(real); // symlinks resolved
    for (const dir of [DESCRIPTOR_DIR, FSMETA_DIR]) fs.mkdirSync(path.join(real, dir), { recursive: true, mode: 0o700 });
    const store = new Store(real);
    store.collectGarbage();
    return store;
  }

  descriptorPath(digest: string): string {
    return path.join(this.descriptorDir, `${digest}.vmdk`);
  }

  fsmetaPath(digest: string): string {
    return path.join(this.fsmetaDir, `${digest}.erofs`);
  }

  /** Writes a descriptor under the digest of its text (no write if an identical file is there). Returns its path. */
  putDescriptor(text: string): string {
    const file = this.descriptorPath(sha256(text));
    this.putContent(file, Buffer.from(text, 'utf8'));
    return file;
  }

  /** Writes an fsmeta image under the digest of its bytes. Returns its path. */
  putFsmeta(bytes: Uint8Array): string {
    const file = this.fsmetaPath(sha256(bytes));
    this.putContent(file, bytes);
    return file;
  }

  /**
   * Writes an fsmeta image under a caller-chosen digest (the identity of the
   * layers it was built from), replacing a file whose bytes differ.
   */
  putFsmetaAs(digest: string, bytes: Uint8Array): string {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`fsmeta name ${JSON.stringify(digest)} is not a sha256 digest`);
    const file = this.fsmetaPath(digest);
    this.putContent(file, bytes);
    return file;
  }

  /**
   * Content-addressed write. An existing file is trusted only if its bytes are
   * exactly the expected ones; anything else (truncated by a disk problem,
   * edited by hand) is atomically replaced.
   */
  private putContent(file: string, bytes: Uint8Array): void {
    const existing = readIfExists(file);
    if (existing && existing.equals(bytes)) return;
    writeFileAtomic(file, bytes, 0o644);
  }

  /** Relative store name (`vmdk/<d>.vmdk`) of an absolute path inside the store. */
  relative(file: string): string {
    const rel = path.relative(this.root, file);
    const [dir, name, ...rest] = rel.split(path.sep);
    const ok = rest.length === 0 && ((dir === DESCRIPTOR_DIR && DESCRIPTOR_NAME.test(name ?? '')) ||
      (dir === FSMETA_DIR && FSMETA_NAME.test(name ?? '')));
    if (!ok) throw new Error(`${file} is not a store file under ${this.root}`);
    return rel;
  }

  /** Records that (profile, key) uses exactly these store files. Idempotent. */
  setReferences(profile: string, key: string, files: string[]): void {
    this.refs.set(profile, key, files.map((f) => this.relative(f)));
  }

  references(profile: string, key: string): KeyReferences | undefined {
    return this.refs.get(profile, key);
  }

  dropReferences(profile: string, key: string): void {
    this.refs.drop(profile, key);
  }

  referencingKeys(profile: string): { key: string; recordedAt: number }[] {
    return this.refs.keys(profile);
  }

  /**
   * Protects files a build is about to reference from a GC that runs while
   * the build awaits something. Returns the release function.
   */
  pin(files: string[]): () => void {
    const rel = files.map((f) => this.relative(f));
    for (const f of rel) this.pins.set(f, (this.pins.get(f) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const f of rel) {
        const n = (this.pins.get(f) ?? 1) - 1;
        if (n <= 0) this.pins.delete(f);
        else this.pins.set(f, n);
      }
    };
  }

  /** Deletes unreferenced, unpinned store files and leftover temp files. */
  collectGarbage(): GcResult {
    const referenced = this.refs.referencedFiles();
    const removed: string[] = [];
    let temps = 0;
    for (const [dir, pattern] of [[DESCRIPTOR_DIR, DESCRIPTOR_NAME], [FSMETA_DIR, FSMETA_NAME]] as const) {
      const abs = path.join(this.root, dir);
      temps += removeLeftoverTempFiles(abs);
      for (const name of fs.readdirSync(abs)) {
        // Only our own file names are ever deleted; anything else is left alone.
        if (name.startsWith(TEMP_PREFIX) || !pattern.test(name)) continue;
        const rel = `${dir}/${name}`;
        if (referenced.has(rel) || this.pins.has(rel)) continue;
        fs.rmSync(path.join(abs, name), { force: true });
        removed.push(rel);
      }
    }
    return { removed, temps };
  }

  counts(): StoreCounts {
    const count = (dir: string, pattern: RegExp) => fs.readdirSync(path.join(this.root, dir)).filter((n) => pattern.test(n)).length;
    return { descriptors: count(DESCRIPTOR_DIR, DESCRIPTOR_NAME), fsmeta: count(FSMETA_DIR, FSMETA_NAME) };
  }

  close(): void {
    this.refs.close();
  }
}
