/**
 * The mount steps (docs/contract-v2.md, "What the host helper does") and their
 * rollback. `prepareMount` checks everything it can without a child process and
 * touches nothing; `hostMount` makes the mounts (its first step in block mode,
 * `losetup -j` on an existing upper image, still refuses with exit 2) and, on
 * any failure, waits for every step in flight, then
 * undoes what was done in reverse order (unmount, losetup -d, rmdir, remove a
 * freshly created upper image) before rethrowing. On success the only thing
 * left is the mount on TARGET: loop devices are auto-cleared and the private
 * mounts lazily detached, so the caller's single unmount of TARGET releases
 * everything.
 *
 * Independent steps overlap (each is a child process of a few ms, and this
 * runs on every container start): the upper image's check and mkfs next to
 * the EROFS chain, and `losetup -d` of the layer loops next to the overlay mount. Loop
 * devices are allocated one at a time (see mountErofs).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HelperRequest } from './arguments';
import { run, runSync, settleAll } from './commands';
import { EXIT_FAILED, HelperError, refuse, show } from './errors';
import { readSource, type SourceImages } from './source';
import { checkPathSyntax, resolveTrusted, resolveTrustedMaybeMissing, type TrustRoots } from './trust-roots';

/** Private mount points live here, under erofs-vmdk's root (mode 0700). */
export const HOST_MOUNTS_DIR = 'host-mounts';

export type ResolvedUpper =
  | { kind: 'none' }
  | { kind: 'dir'; upperdir: string; workdir: string }
  | { kind: 'image'; image: string; exists: boolean; size: number };

export interface MountPlan {
  request: HelperRequest;
  images: SourceImages;
  /** realpath of TARGET. */
  target: string;
  upper: ResolvedUpper;
  /** `<root>/host-mounts` (realpath of root); containers only. */
  privateDir: string | undefined;
}

/** Characters overlayfs would read as separators or escapes in its option string. */
function checkOverlayPath(real: string, what: string, given: string): void {
  if (/[,:\\]/.test(real)) refuse(`${what} ${show(given)} resolves to ${show(real)}, which has a "," ":" or "\\" overlayfs cannot take`);
}

function resolveDir(p: string, what: string, roots: TrustRoots): string {
  const real = resolveTrusted(p, what, roots);
  if (!fs.statSync(real).isDirectory()) refuse(`${what} ${show(p)} is not a directory`);
  checkOverlayPath(real, what, p);
  return real;
}

/** Every check, in order: source and its extents, TARGET, the upper layer. Touches nothing, spawns nothing. */
export function prepareMount(request: HelperRequest, roots: TrustRoots): MountPlan {
  const images = readSource(request.source, roots);

  checkPathSyntax(request.target, 'target');
  let target: string;
  try {
    target = fs.realpathSync(request.target);
  } catch (err) {
    return refuse(`target ${show(request.target)} does not exist (${(err as NodeJS.ErrnoException).code})`);
  }
  if (!fs.statSync(target).isDirectory()) refuse(`target ${show(request.target)} is not a directory`);
  if (target === '/') refuse('target "/" is refused');

  let upper: ResolvedUpper = { kind: 'none' };
  const u = request.upper;
  if (u.kind === 'dir') {
    upper = { kind: 'dir', upperdir: resolveDir(u.upperdir, 'upperdir', roots), workdir: resolveDir(u.workdir, 'workdir', roots) };
  } else if (u.kind === 'image') {
    const { real, exists } = resolveTrustedMaybeMissing(u.image, 'upper image', roots);
    if (exists && !fs.statSync(real).isFile()) refuse(`upper image ${show(u.image)} is not a regular file`);
    upper = { kind: 'image', image: real, exists, size: u.size };
  }

  let privateDir: string | undefined;
  if (upper.kind !== 'none') {
    if (roots.root === undefined) refuse(`root ${show(roots.config.root)} does not exist (private mount points go under it)`);
    privateDir = path.join(roots.root, HOST_MOUNTS_DIR);
    checkOverlayPath(privateDir, 'root', roots.config.root);
  }
  return { request, images, target, upper, privateDir };
}

/** Undo actions, run in reverse; an action can be dropped once its effect is gone. */
class Rollback {
  private readonly steps: { what: string; undo: () => void; done: boolean }[] = [];

  push(what: string, undo: () => void): { drop(): void } {
    const step = { what, undo, done: false };
    this.steps.push(step);
    return { drop: () => { step.done = true; } };
  }

  /** Runs every pending undo action; returns the ones that failed. */
  run(): string[] {
    const failed: string[] = [];
    for (const step of this.steps.reverse()) {
      if (step.done) continue;
      step.done = true;
      try {
        step.undo();
      } catch (err) {
        failed.push(`${step.what} (${(err as Error).message})`);
      }
    }
    return failed;
  }
}

function umountSync(dir: string): void {
  try {
    runSync(`unmounting ${show(dir)}`, 'umount', [dir]);
  } catch (err) {
    // Busy: detach it anyway, what matters is that nothing stays mounted.
    try {
      runSync(`unmounting ${show(dir)}`, 'umount', ['-l', dir]);
    } catch {
      throw err;
    }
  }
}

function detachLoopsSync(loops: string[]): void {
  if (loops.length) runSync('detaching the layer loop devices', 'losetup', ['-d', ...loops]);
}

interface ErofsMount {
  /** Marks the layer loops auto-clear (`losetup -d` on a busy loop): they go with the last unmount. */
  releaseLoops(): Promise<void>;
  /** Drops the unmount undo step once the mount is detached. */
  mounted: { drop(): void };
}

/**
 * Mounts the EROFS read-only on `dir`: one read-only loop device per layer blob, then the fsmeta through util-linux's auto-clear `loop` option with one
 * `device=` per blob. Layer loops must be released by the caller (`releaseLoops`).
 */
async function mountErofs(images: SourceImages, dir: string, flags: string[], rollback: Rollback): Promise<ErofsMount> {
  const loops: string[] = [];
  // Before the mount the loops are ours alone and not auto-clear: detaching them is safe.
  const attached = rollback.push('detach the layer loop devices', () => detachLoopsSync(loops));
  // One at a time: concurrent `losetup -f` calls pick the same free device and the loser
  // sleeps 200 ms before retrying (util-linux 2.38 create_loop), far more than it saves.
  for (const blob of images.blobs) {
    const loop = (await run(`attaching layer ${show(blob)}`, 'losetup', ['-r', '-f', '--show', blob])).trim();
    if (!/^\/dev\/loop[0-9]+$/.test(loop)) throw new HelperError(`attaching layer ${show(blob)}: losetup printed ${show(loop)}`, EXIT_FAILED);
    loops.push(loop);
  }
  const options = ['ro', 'loop', ...loops.map((l) => `device=${l}`), ...flags].join(',');
  await run(`mounting EROFS ${show(images.primary)} on ${show(dir)}`, 'mount', ['-t', 'erofs', '-o', options, images.primary, dir]);
  let released = loops.length === 0;
  // While mounted the loops cannot be reused by anyone: `losetup -d` first (marks them
  // auto-clear, harmless when already done), then the unmount frees them. Never after the
  // unmount: an auto-cleared number may already belong to someone else.
  const mounted = rollback.push(`unmount ${dir}`, () => {
    if (!released) {
      try {
        detachLoopsSync(loops);
      } catch {
        /* the unmount below still matters most */
      }
    }
    umountSync(dir);
  });
  attached.drop();
  return {
    mounted,
    releaseLoops: async () => {
      if (released) return;
      await run('detaching the layer loop devices', 'losetup', ['-d', ...loops]);
      released = true;
    },
  };
}

interface PrivateMountPoint {
  dir: string;
  /** Drops the rmdir undo step once the directory is gone. */
  created: { drop(): void };
  /** Drops the unmount undo step once the mount is detached. */
  mounted?: { drop(): void };
}

function privateMountPoint(parent: string, prefix: string, rollback: Rollback): PrivateMountPoint {
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  return { dir, created: rollback.push(`remove ${dir}`, () => fs.rmdirSync(dir)) };
}

/**
 * Never mount an ext4 image twice (or while a VM has it on a loop device). A refusal
 * (exit 2) even though it runs next to the EROFS chain: the rollback undoes that first.
 */
async function checkImageUnused(upper: Extract<ResolvedUpper, { kind: 'image' }>): Promise<void> {
  if (!upper.exists) return;
  const busy = (await run(`checking upper image ${show(upper.image)}`, 'losetup', ['-j', upper.image])).trim();
  if (busy !== '') refuse(`upper image ${show(upper.image)} is already attached to ${busy.split(':')[0]} (in use by another mount)`);
}

/** Creates and formats the upper image when missing or empty; undone by the rollback. */
async function prepareImage(upper: Extract<ResolvedUpper, { kind: 'image' }>, rollback: Rollback): Promise<void> {
  let created = false;
  let fd: number;
  if (upper.exists) {
    fd = fs.openSync(upper.image, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
  } else {
    fd = fs.openSync(upper.image, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    created = true;
    rollback.push(`remove ${upper.image}`, () => fs.unlinkSync(upper.image));
  }
  let format = created;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new HelperError(`upper image ${show(upper.image)} is not a regular file`, EXIT_FAILED);
    if (st.size === 0) {
      format = true;
      if (!created) rollback.push(`empty ${upper.image} again`, () => fs.truncateSync(upper.image, 0));
      fs.ftruncateSync(fd, upper.size);
    }
  } finally {
    fs.closeSync(fd);
  }
  if (format) await run(`formatting upper image ${show(upper.image)}`, 'mkfs.ext4', ['-q', '-F', upper.image]);
}

function ensureDir(dir: string): void {
  try {
    fs.mkdirSync(dir, 0o755);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (!fs.lstatSync(dir).isDirectory()) throw new HelperError(`${show(dir)} in the upper image is not a directory`, EXIT_FAILED);
}

/** Block mode: the ext4 image on its own private mount point, `upper` and `work` inside it. */
async function mountUpperImage(
  upper: Extract<ResolvedUpper, { kind: 'image' }>,
  parent: string,
  rollback: Rollback,
): Promise<{ point: PrivateMountPoint; upperdir: string; workdir: string }> {
  const point = privateMountPoint(parent, 'upper-', rollback);
  await run(`mounting upper image ${show(upper.image)}`, 'mount', ['-t', 'ext4', '-o', 'loop,rw', upper.image, point.dir]);
  point.mounted = rollback.push(`unmount ${point.dir}`, () => umountSync(point.dir));
  const upperdir = path.join(point.dir, 'upper');
  const workdir = path.join(point.dir, 'work');
  ensureDir(upperdir);
  ensureDir(workdir);
  return { point, upperdir, workdir };
}

/** Makes the mounts of `plan`; on failure undoes them and rethrows (exit 1). */
export async function hostMount(plan: MountPlan): Promise<void> {
  const rollback = new Rollback();
  const { request, upper } = plan;
  const flags = [request.nodev && 'nodev', request.nosuid && 'nosuid', request.noexec && 'noexec'].filter((f): f is string => !!f);
  try {
    if (upper.kind === 'none') {
      const erofs = await mountErofs(plan.images, plan.target, flags, rollback);
      await erofs.releaseLoops();
      return;
    }
    const parent = plan.privateDir as string;
    fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
    const lower = privateMountPoint(parent, 'lower-', rollback);
    // The image check and mkfs (when the image is new) overlap the EROFS chain; the ext4 loop
    // mount waits for it, so that its loop allocation never races our `losetup -f` calls.
    const erofsChain = mountErofs(plan.images, lower.dir, [], rollback);
    const imagePrep = upper.kind === 'image' ? checkImageUnused(upper).then(() => prepareImage(upper, rollback)) : Promise.resolve();
    await settleAll<unknown>([erofsChain, imagePrep]);
    const erofs = await erofsChain;
    const rw = upper.kind === 'image' ? await mountUpperImage(upper, parent, rollback) : undefined;
    lower.mounted = erofs.mounted;
    const { upperdir, workdir } = rw ?? (upper as Extract<ResolvedUpper, { kind: 'dir' }>);

    const options = [`lowerdir=${lower.dir}`, `upperdir=${upperdir}`, `workdir=${workdir}`, ...(request.readOnly ? ['ro'] : []), ...flags];
    const overlay = run(`mounting overlay on ${show(plan.target)}`, 'mount', ['-t', 'overlay', 'overlay', '-o', options.join(','), plan.target]).then(() => {
      rollback.push(`unmount ${plan.target}`, () => umountSync(plan.target));
    });
    await settleAll([overlay, erofs.releaseLoops()]);

    // overlayfs holds private clones of its layers: detach ours so TARGET is the only handle left.
    const points = rw ? [lower, rw.point] : [lower];
    await settleAll(
      points.map(async (point) => {
        await run(`detaching ${show(point.dir)}`, 'umount', ['-l', point.dir]);
        point.mounted?.drop();
        fs.rmdirSync(point.dir);
        point.created.drop();
      }),
    );
  } catch (err) {
    const failed = rollback.run();
    const base = err instanceof HelperError ? err : new HelperError(`${(err as Error).message}`, EXIT_FAILED);
    if (failed.length === 0) throw base;
    throw new HelperError(`${base.message}; undo failed: ${failed.join('; ')}`, EXIT_FAILED);
  }
}
