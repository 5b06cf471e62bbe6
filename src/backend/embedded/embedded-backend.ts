/**
 * The embedded EROFS snapshotter: containerd's EROFS snapshotter semantics and
 * layout, with metadata in SQLite, running inside the daemon.
 *
 * Crash-safety protocol (the database and the directories agree after a
 * SIGKILL at any point; start-up `reconcile` finishes or undoes what was cut):
 *
 * - Prepare/View: the directory is built under `snapshots/.tmp-erofs-vmdk-new-*`,
 *   then, INSIDE the insert transaction, renamed to `snapshots/<id>` (and the
 *   parent directory fsynced) before the transaction commits. Crash before the
 *   commit: a temp dir or an `<id>` dir with no row, both removed at start-up
 *   and by Cleanup. Crash after: row and directory both exist.
 * - Commit: if no layer.erofs exists (the EROFS differ did not write one), fs/
 *   is converted into a temp file inside the snapshot dir; a marker
 *   `.erofs-vmdk-converted` is written (durably) and the temp file renamed to
 *   layer.erofs inside the commit transaction. So a layer.erofs next to the
 *   marker in an ACTIVE snapshot is always a leftover of an interrupted commit
 *   (discarded and redone), while one without the marker came from the differ
 *   (kept). After the transaction: fs/ is emptied, the marker removed and, in
 *   legacy style, layer.erofs mounted on fs/; start-up redoes these steps for
 *   every committed snapshot (idempotent).
 * - Remove: the legacy layer mount is taken down and the row deleted in one
 *   transaction; the directory is renamed to a temp name and deleted after the
 *   commit. Crash in between: an orphan directory, removed at start-up and by
 *   Cleanup. A failed unmount rolls the removal back.
 * - Directories are only ever deleted after checking that nothing is mounted
 *   below them (a recursive delete must never walk into a live mount).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { TEMP_PREFIX, removeLeftoverTempFiles, writeFileAtomic } from '../../atomic/write-file-atomic';
import { failedPrecondition, invalidArgument } from '../../errdefs';
import { freezeMounts, type Mount } from '../../mount';
import type { Backend, CallContext, SnapshotInfo, SnapshotUsage } from '../backend';
import { diskUsage } from './disk-usage';
import { convertDirToErofs, fsyncPath } from './erofs-convert';
import { matchesAny, parseFilters } from './filters';
import { mountErofsLayers, mountPoints, mountsUnder, unmountUnder } from './host-mounts';
import { KeyedLock } from './keyed-lock';
import { Layout, NEW_DIR_PREFIX, REMOVED_DIR_PREFIX, parseSnapshotDirName } from './layout';
import { MetadataStore, normalizeLabels, toInfo, type SnapshotRecord } from './metadata-store';
import { legacyMounts, managerMounts, type MountStyle, type ShapeInput } from './mount-shapes';

export interface EmbeddedBackendOptions {
  /** Backend root directory (created with mode 0700). */
  root: string;
  /** 'legacy' for containerd < 2.2 (no mount manager), 'manager' for containerd >= 2.2. */
  mountStyle: MountStyle;
  /** Bytes; > 0 enables block mode (an ext4 writable layer per active snapshot). Manager style only. */
  defaultSize?: number;
  logger: Logger;
}

function requireKey(what: string, key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw invalidArgument(`${what} must not be empty`);
  return key;
}

/** How long a snapshot's built answer is reused (see EmbeddedBackend.answers). */
const ANSWER_REUSE_MS = 1000;

export class EmbeddedBackend implements Backend {
  private readonly layout: Layout;
  private readonly store: MetadataStore;
  private readonly style: MountStyle;
  private readonly defaultSize: number;
  private readonly log: Logger;
  private readonly locks = new KeyedLock();
  /** Temp directories of Prepare/View calls in flight: Cleanup must not take them. */
  private readonly inFlight = new Set<string>();
  /** Legacy style: snapshot ids whose layer.erofs we know is mounted on fs/. */
  private readonly mountedLayers = new Set<number>();
  /**
   * What a warm Mounts of a deep image would otherwise recompute every time
   * (a 128-row parent walk, a stat per parent):
   * - a committed snapshot's ancestor ids: ids are never reused and a committed
   *   parent is never rebased, so they hold while the snapshot exists;
   * - parents known to have a non-empty fsmeta.erofs: one never goes away while
   *   its snapshot exists. "No fsmeta" is not remembered: containerd 2.2's
   *   differ may still be generating it (an empty placeholder until done);
   * - each active/view snapshot's answer, rebuilt when older than
   *   ANSWER_REUSE_MS, so a fsmeta that appears later is used within a second
   *   (until then the per-layer answer, which mounts the same tree). Frozen and
   *   shared, so the proxy core plans it once too.
   * All dropped when the snapshot is committed or removed.
   */
  private readonly committedChains = new Map<number, number[]>();
  private readonly parentsWithFsmeta = new Set<number>();
  private readonly answers = new Map<number, { parentId: number | null; kind: SnapshotRecord['kind']; builtAt: number; mounts: readonly Mount[] }>();
  private closed = false;

  private constructor(options: EmbeddedBackendOptions, store: MetadataStore) {
    this.layout = new Layout(options.root);
    this.store = store;
    this.style = options.mountStyle;
    this.defaultSize = options.defaultSize ?? 0;
    this.log = options.logger;
  }

  static async open(options: EmbeddedBackendOptions): Promise<EmbeddedBackend> {
    if (options.mountStyle !== 'legacy' && options.mountStyle !== 'manager') {
      throw invalidArgument(`embedded backend: mount_style must be "legacy" or "manager", not ${JSON.stringify(options.mountStyle)}`);
    }
    const size = options.defaultSize ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument(`embedded backend: default_size must be a non-negative integer, not ${size}`);
    if (size > 0 && options.mountStyle === 'legacy') {
      throw invalidArgument('embedded backend: default_size (block mode) needs mount_style = "manager": containerd < 2.2 cannot make the ext4 writable layer');
    }
    const layout = new Layout(path.resolve(options.root));
    fs.mkdirSync(layout.root, { recursive: true, mode: 0o700 });
    fs.mkdirSync(layout.snapshotsDir, { recursive: true, mode: 0o700 });
    const store = new MetadataStore(layout.dbFile);
    const backend = new EmbeddedBackend({ ...options, root: layout.root }, store);
    try {
      await backend.reconcile();
    } catch (err) {
      store.close();
      throw err;
    }
    return backend;
  }

  // ---- Snapshots API ----------------------------------------------------------------

  async prepare(_ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.create('active', key, parent, labels);
  }

  async view(_ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.create('view', key, parent, labels);
  }

  async mounts(_ctx: CallContext, key: string): Promise<Mount[]> {
    this.assertOpen();
    const record = this.store.mustGet(requireKey('key', key));
    if (record.kind === 'committed') {
      throw failedPrecondition(`snapshot ${JSON.stringify(key)} is committed: only active and view snapshots have mounts`);
    }
    return this.mountsFor(record);
  }

  async commit(ctx: CallContext, name: string, key: string, labels: Record<string, string>, parent: string): Promise<void> {
    this.assertOpen();
    requireKey('name', name);
    requireKey('key', key);
    const wanted = normalizeLabels(labels);
    await this.locks.run(key, async () => {
      const active = this.store.checkCommit(name, key);
      const id = active.id;
      const blob = this.layout.layer(id);
      if (fs.existsSync(this.layout.converted(id))) {
        // Our own conversion from an interrupted Commit: fs/ is still intact, redo it.
        fs.rmSync(blob, { force: true });
      }
      let converted: string | undefined;
      if (!fs.existsSync(blob)) {
        converted = path.join(this.layout.dir(id), `${TEMP_PREFIX}layer.erofs.${randomBytes(6).toString('hex')}`);
        try {
          await this.convert(id, converted, ctx.signal);
          fsyncPath(converted);
          writeFileAtomic(this.layout.converted(id), '');
        } catch (err) {
          fs.rmSync(converted, { force: true });
          throw err;
        }
      }
      const usage = diskUsage(converted ?? blob);
      let placed = false;
      try {
        this.store.commit(name, key, id, wanted, parent ?? '', usage, () => {
          if (converted) {
            fs.renameSync(converted, blob);
            placed = true;
            fsyncPath(this.layout.dir(id));
          }
        });
      } catch (err) {
        if (converted) {
          // Rolled back: drop our blob and its marker, so a blob the differ writes later is not mistaken for ours.
          fs.rmSync(placed ? blob : converted, { force: true });
          fs.rmSync(this.layout.converted(id), { force: true });
        }
        throw err;
      }
      this.answers.delete(id); // committed snapshots have no mounts
      this.log.debug({ key, name, id, converted: converted !== undefined }, 'embedded: committed');
      await this.finishCommitted(id);
    });
  }

  async remove(_ctx: CallContext, key: string): Promise<void> {
    this.assertOpen();
    requireKey('key', key);
    await this.locks.run(key, async () => {
      const removed = this.store.remove(key, (record) => {
        // Inside the transaction: a failed unmount keeps the snapshot.
        unmountUnder(this.layout.fs(record.id));
        this.mountedLayers.delete(record.id);
      });
      this.forgetFacts(removed.id);
      this.deleteSnapshotDir(removed.id);
    });
  }

  async stat(_ctx: CallContext, key: string): Promise<SnapshotInfo> {
    this.assertOpen();
    return toInfo(this.store.mustGet(requireKey('key', key)));
  }

  async update(_ctx: CallContext, info: SnapshotInfo, fieldPaths: string[]): Promise<SnapshotInfo> {
    this.assertOpen();
    requireKey('snapshot name', info?.name);
    return toInfo(this.store.update(info, fieldPaths ?? []));
  }

  async *list(_ctx: CallContext, filters: string[]): AsyncIterable<SnapshotInfo> {
    this.assertOpen();
    const parsed = parseFilters(filters ?? []);
    // Materialised first: callers may Stat (or mutate) while iterating.
    const infos = this.store.all().map(toInfo).filter((info) => matchesAny(parsed, info));
    for (const info of infos) yield info;
  }

  async usage(_ctx: CallContext, key: string): Promise<SnapshotUsage> {
    this.assertOpen();
    const record = this.store.mustGet(requireKey('key', key));
    if (record.kind === 'active') return diskUsage(this.layout.fs(record.id));
    return { size: record.size, inodes: record.inodes };
  }

  async cleanup(_ctx: CallContext): Promise<void> {
    this.assertOpen();
    const removed = this.removeUnownedDirs(false);
    if (removed.length > 0) this.log.info({ removed }, 'embedded: cleanup removed directories no snapshot owns');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.store.close();
  }

  // ---- internals --------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw failedPrecondition('embedded backend is closed');
  }

  private async create(kind: 'active' | 'view', key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    this.assertOpen();
    requireKey('key', key);
    const wanted = normalizeLabels(labels);
    const temp = fs.mkdtempSync(path.join(this.layout.snapshotsDir, NEW_DIR_PREFIX));
    this.inFlight.add(path.basename(temp));
    let placed: string | undefined;
    let record: SnapshotRecord;
    try {
      fs.mkdirSync(path.join(temp, 'fs'), 0o755);
      fs.chmodSync(path.join(temp, 'fs'), 0o755); // independent of the process umask
      if (kind === 'active') {
        if (this.defaultSize === 0) {
          fs.mkdirSync(path.join(temp, 'work'), 0o711);
        }
        // Tells containerd's EROFS differ that it may write layer.erofs here.
        fs.writeFileSync(path.join(temp, '.erofslayer'), '', { mode: 0o644 });
      }
      record = this.store.create(kind, key, parent ?? '', wanted, (id) => {
        const parentRecord = parent ? this.store.get(parent) : undefined;
        if (parentRecord) this.copyParentOwnership(parentRecord.id, path.join(temp, 'fs'));
        const target = this.layout.dir(id);
        // An id can only be taken again after a rolled-back insert: its directory is a leftover.
        if (fs.existsSync(target)) this.removeTree(target);
        fs.renameSync(temp, target);
        placed = target;
        fsyncPath(this.layout.snapshotsDir);
      });
    } catch (err) {
      if (placed && !this.store.get(key)) this.removeTree(placed);
      fs.rmSync(temp, { recursive: true, force: true });
      throw err;
    } finally {
      this.inFlight.delete(path.basename(temp));
    }
    this.log.debug({ key, parent, kind, id: record.id }, 'embedded: created');
    return this.mountsFor(record);
  }

  /** containerd gives a child's upper dir the owner of its parent's root directory. */
  private copyParentOwnership(parentId: number, fsDir: string): void {
    const st = fs.statSync(this.layout.fs(parentId));
    fs.lchownSync(fsDir, st.uid, st.gid);
  }

  private async mountsFor(record: SnapshotRecord): Promise<Mount[]> {
    const input: ShapeInput = { kind: record.kind, id: record.id, parentIds: this.parentIds(record) };
    if (this.style === 'legacy') await this.ensureLayersMounted(input.parentIds);
    const known = this.answers.get(record.id);
    const now = Date.now();
    if (known !== undefined && known.parentId === record.parentId && known.kind === record.kind && now - known.builtAt < ANSWER_REUSE_MS) {
      return known.mounts as Mount[];
    }
    const mounts =
      this.style === 'manager'
        ? managerMounts(input, this.layout, { hasFsmeta: (id) => this.hasFsmeta(id) }, { defaultSize: this.defaultSize })
        : legacyMounts(input, this.layout);
    this.answers.set(record.id, { parentId: record.parentId, kind: record.kind, builtAt: now, mounts: freezeMounts(mounts) });
    return mounts;
  }

  private forgetFacts(id: number): void {
    this.committedChains.delete(id);
    this.parentsWithFsmeta.delete(id);
    this.answers.delete(id);
  }

  /** The record's parent chain, direct parent first. */
  private parentIds(record: SnapshotRecord): number[] {
    if (record.parentId === null) return [];
    let ids = this.committedChains.get(record.parentId);
    if (ids === undefined) {
      ids = this.store.parentChain(record).map((p) => p.id);
      this.committedChains.set(record.parentId, ids);
    }
    return ids;
  }

  /** Asked only about parents, which are committed (see parentsWithFsmeta). */
  private hasFsmeta(id: number): boolean {
    if (this.parentsWithFsmeta.has(id)) return true;
    let present = false;
    // throwIfNoEntry: no exception built for the usual answer (no fsmeta).
    try {
      present = (fs.statSync(this.layout.fsmeta(id), { throwIfNoEntry: false })?.size ?? 0) > 0;
    } catch {
      /* unreadable: treated as no fsmeta, asked again next time */
    }
    if (present) this.parentsWithFsmeta.add(id);
    return present;
  }

  /** Legacy style: every parent's layer.erofs must be mounted on its fs/ before the overlay can use it. */
  private async ensureLayersMounted(ids: number[]): Promise<void> {
    const missing = ids.filter((id) => !this.mountedLayers.has(id));
    if (missing.length === 0) return;
    for (const id of missing) {
      if (!fs.existsSync(this.layout.layer(id))) {
        throw failedPrecondition(`committed snapshot directory ${this.layout.dir(id)} has no layer.erofs`);
      }
    }
    await mountErofsLayers(missing.map((id) => ({ blob: this.layout.layer(id), target: this.layout.fs(id) })));
    missing.forEach((id) => this.mountedLayers.add(id));
  }

  /** Writes the EROFS blob of active snapshot `id` to `output`, from fs/ or (block mode) rwlayer.img. */
  private async convert(id: number, output: string, signal?: AbortSignal): Promise<void> {
    const rwlayer = this.layout.rwlayer(id);
    if (!fs.existsSync(rwlayer)) {
      await convertDirToErofs(output, this.layout.fs(id), signal);
      return;
    }
    // Block mode: the writable layer is an ext4 image; its upper/ holds the changes.
    const mnt = fs.mkdtempSync(path.join(this.layout.dir(id), `${TEMP_PREFIX}rwlayer-`));
    try {
      execFileSync('mount', ['-t', 'ext4', '-o', 'ro,loop,noload', rwlayer, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
      try {
        const upper = path.join(mnt, 'upper');
        await convertDirToErofs(output, fs.existsSync(upper) ? upper : this.layout.fs(id), signal);
      } finally {
        unmountUnder(mnt);
      }
    } finally {
      if (mountsUnder(mnt).length === 0) fs.rmSync(mnt, { recursive: true, force: true });
    }
  }

  /** Post-commit steps, idempotent (start-up redoes them for every committed snapshot). */
  private async finishCommitted(id: number): Promise<void> {
    this.clearCommittedDir(id, mountsUnder(this.layout.fs(id)).length > 0);
    if (this.style === 'legacy') {
      this.mountedLayers.delete(id);
      await this.ensureLayersMounted([id]);
    }
  }

  /**
   * Files of committed snapshot `id` that only the commit needed: the
   * converted upper contents in fs/ (unless something is mounted there; fs/
   * itself stays as ownership source and legacy mount point), the block-mode
   * writable layer and the conversion marker.
   */
  private clearCommittedDir(id: number, fsMounted: boolean): void {
    const fsDir = this.layout.fs(id);
    if (!fsMounted) {
      fs.mkdirSync(fsDir, { recursive: true, mode: 0o755 });
      for (const name of fs.readdirSync(fsDir)) fs.rmSync(path.join(fsDir, name), { recursive: true, force: true });
    }
    fs.rmSync(this.layout.rwlayer(id), { force: true });
    fs.rmSync(this.layout.converted(id), { force: true });
  }

  private deleteSnapshotDir(id: number): void {
    const dir = this.layout.dir(id);
    if (!fs.existsSync(dir)) return;
    const doomed = path.join(this.layout.snapshotsDir, `${REMOVED_DIR_PREFIX}${id}-${randomBytes(4).toString('hex')}`);
    try {
      fs.renameSync(dir, doomed);
      this.removeTree(doomed);
    } catch (err) {
      // The snapshot is gone from the database: its directory is now an orphan Cleanup will retry.
      this.log.warn({ err, dir }, 'embedded: could not remove snapshot directory; Cleanup will retry');
    }
  }

  /** Recursive delete that first unmounts anything below and never walks into a live mount. */
  private removeTree(dir: string): void {
    unmountUnder(dir);
    const left = mountsUnder(dir);
    if (left.length > 0) throw failedPrecondition(`refusing to delete ${dir}: still mounted: ${left.join(', ')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** Removes snapshot directories no row owns (and, at start-up, every temp dir). Returns their names. */
  private removeUnownedDirs(startup: boolean): string[] {
    const ids = this.store.ids();
    const removed: string[] = [];
    for (const name of fs.readdirSync(this.layout.snapshotsDir)) {
      const id = parseSnapshotDirName(name);
      if (id !== undefined && ids.has(id)) continue;
      if (id === undefined && !name.startsWith(TEMP_PREFIX)) {
        this.log.warn({ name, dir: this.layout.snapshotsDir }, 'embedded: leaving unknown entry in snapshots directory alone');
        continue;
      }
      if (!startup && this.inFlight.has(name)) continue;
      try {
        this.removeTree(path.join(this.layout.snapshotsDir, name));
        removed.push(name);
      } catch (err) {
        this.log.error({ err, name }, 'embedded: cannot remove unowned snapshot directory');
      }
    }
    return removed;
  }

  /** Start-up: finish or undo whatever a crash interrupted (see the protocol at the top). */
  private async reconcile(): Promise<void> {
    const removed = this.removeUnownedDirs(true);
    if (removed.length > 0) this.log.info({ removed }, 'embedded: start-up removed leftover directories');
    const committed: number[] = [];
    for (const record of this.store.all()) {
      const dir = this.layout.dir(record.id);
      if (!fs.existsSync(dir)) {
        this.log.error({ key: record.key, dir }, 'embedded: snapshot directory is missing (removed by hand?)');
        continue;
      }
      for (const name of fs.readdirSync(dir)) {
        if (name.startsWith(TEMP_PREFIX)) this.removeTree(path.join(dir, name));
      }
      removeLeftoverTempFiles(dir);
      if (record.kind === 'active' && fs.existsSync(this.layout.converted(record.id))) {
        fs.rmSync(this.layout.layer(record.id), { force: true });
        fs.rmSync(this.layout.converted(record.id), { force: true });
      }
      if (record.kind === 'committed') {
        if (!fs.existsSync(this.layout.layer(record.id))) {
          this.log.error({ key: record.key, dir }, 'embedded: committed snapshot has no layer.erofs (removed by hand?)');
          continue;
        }
        committed.push(record.id);
      }
    }
    const mounted = new Set(mountPoints()); // one read of mountinfo for every committed snapshot
    for (const id of committed) this.clearCommittedDir(id, mounted.has(this.layout.fs(id)));
    if (this.style === 'legacy' && committed.length > 0) {
      // One batch: a restart with many layers costs one python process, not one per layer.
      await this.ensureLayersMounted(committed);
    }
  }
}

/** Unmounts every legacy layer mount under a backend root (tests, uninstall). Leaves the files. */
export function unmountLegacyLayers(root: string): void {
  unmountUnder(path.join(path.resolve(root), 'snapshots'));
}
