/**
 * Test-side mount activation: what containerd does with a snapshotter's mount
 * list, for both mount styles.
 *
 * - Plain types (bind, overlay, erofs, ext4) are mounted like containerd's
 *   mount.All: bind/rbind with a read-only remount, overlay with long
 *   lowerdir lists made relative to a common parent directory (containerd
 *   does the same to stay under the one-page limit of mount(2) data).
 * - containerd >= 2.2's mount manager prefixes: `format/` (templates
 *   `{{ mount i }}`, `{{ overlay a b }}`, `{{ source i }}`, `{{ target i }}`),
 *   `mkdir/` (`X-containerd.mkdir.path=<path>[:<mode>]`), `mkfs/<fs>`
 *   (`X-containerd.mkfs.fs`, `X-containerd.mkfs.size`: create and format the
 *   image file when it does not exist). Every mount but the last goes to a
 *   private temp directory; the last one on the target.
 * - `erofs` mounts of a file with only ro/loop options are file-backed mounts
 *   (kernel >= 6.12; loop fallback), much faster than a loop device each.
 * - `device=<file>` options of erofs mounts are put on read-only loop devices
 *   (util-linux 2.38 cannot pass regular files there).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mountErofsLayers } from '../../src/backend/embedded/host-mounts';
import type { Mount } from '../../src/mount';

export interface Activation {
  /** Unmounts everything (last first) and frees loop devices and temp dirs. Idempotent. */
  release(): void;
}

function sh(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ').slice(0, 2000)}: ${e.stderr?.trim() || e.message}`);
  }
}

function umount(target: string): void {
  try {
    sh('umount', [target]);
  } catch {
    try {
      sh('umount', ['-l', target]);
    } catch {
      /* not mounted */
    }
  }
}

/** Expands the mount manager's templates against the mounts made so far. */
export function expandTemplates(text: string, mounts: Mount[], targets: string[]): string {
  const at = (i: number, what: string) => {
    if (!Number.isInteger(i) || i < 0 || i >= targets.length) throw new Error(`template refers to ${what} ${i}, only ${targets.length} mounted before`);
    return i;
  };
  return text.replace(/\{\{\s*(mount|source|target|overlay)\s+(\d+)(?:\s+(\d+))?\s*\}\}/g, (_m, fn: string, a: string, b?: string) => {
    const i = Number(a);
    switch (fn) {
      case 'mount':
      case 'target':
        return targets[at(i, 'mount')];
      case 'source':
        return mounts[at(i, 'mount')].source;
      default: {
        const j = Number(b);
        at(i, 'mount');
        at(j, 'mount');
        const out: string[] = [];
        for (let k = i; i <= j ? k <= j : k >= j; k += i <= j ? 1 : -1) out.push(targets[k]);
        return out.join(':');
      }
    }
  });
}

/** Mounts an overlay; when the option string is long, relative to the lowers' common parent (as containerd does). */
function mountOverlay(options: string[], target: string): void {
  const data = options.join(',');
  if (data.length < 4000) {
    sh('mount', ['-t', 'overlay', 'overlay', '-o', data, target]);
    return;
  }
  const dirs = options.flatMap((o) => {
    const [k, v] = [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)];
    return ['lowerdir', 'upperdir', 'workdir'].includes(k) ? v.split(':') : [];
  });
  let common = path.dirname(dirs[0]);
  while (!dirs.every((d) => d.startsWith(`${common}/`))) common = path.dirname(common);
  const relative = options.map((o) => {
    const eq = o.indexOf('=');
    const k = o.slice(0, eq);
    if (!['lowerdir', 'upperdir', 'workdir'].includes(k)) return o;
    return `${k}=${o.slice(eq + 1).split(':').map((d) => path.relative(common, d)).join(':')}`;
  });
  sh('mount', ['-t', 'overlay', 'overlay', '-o', relative.join(','), path.resolve(target)], common);
}

export async function mountAll(mounts: Mount[], target: string, scratch: string): Promise<Activation> {
  // Intermediate mounts live under a private tmpfs, so release can detach them all with one
  // lazy unmount: thousands of umount(8) calls dominate the 128-layer case otherwise.
  const holder = fs.mkdtempSync(path.join(scratch, 'act-'));
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', holder]);
  let finalMounted = false;
  const loops: string[] = [];
  const targets: string[] = [];
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (finalMounted) umount(target);
    try {
      sh('umount', ['-l', holder]);
    } catch {
      /* not mounted */
    }
    for (const l of loops) {
      try {
        sh('losetup', ['-d', l]);
      } catch {
        /* gone */
      }
    }
    fs.rmSync(holder, { recursive: true, force: true });
  };
  try {
    // Plain file-backed erofs lowers need no templates: mount them in one batch up front.
    const plainErofs = (m: Mount, i: number) => i < mounts.length - 1 && m.type === 'erofs' && m.options.every((o) => o === 'ro' || o === 'loop');
    const batch = mounts.flatMap((m, i) => (plainErofs(m, i) ? [{ blob: m.source, target: path.join(holder, String(i)) }] : []));
    batch.forEach((b) => fs.mkdirSync(b.target));
    await mountErofsLayers(batch);
    for (const [i, m] of mounts.entries()) {
      const last = i === mounts.length - 1;
      if (plainErofs(m, i)) {
        targets.push(path.join(holder, String(i)));
        continue;
      }
      let dest = target;
      if (!last) {
        dest = path.join(holder, String(i));
        fs.mkdirSync(dest);
      }
      let type = m.type;
      let source = m.source;
      let options = [...m.options];
      for (;;) {
        if (type.startsWith('format/')) {
          type = type.slice('format/'.length);
          source = expandTemplates(source, mounts, targets);
          options = options.map((o) => expandTemplates(o, mounts, targets));
        } else if (type.startsWith('mkdir/')) {
          type = type.slice('mkdir/'.length);
          for (const o of options.filter((o) => o.startsWith('X-containerd.mkdir.path='))) {
            const spec = o.slice('X-containerd.mkdir.path='.length);
            const [dir, mode] = spec.split(':');
            fs.mkdirSync(dir, { recursive: true, mode: mode ? parseInt(mode, 8) : 0o755 });
          }
        } else if (type.startsWith('mkfs/')) {
          type = type.slice('mkfs/'.length);
          const sizeOpt = options.find((o) => o.startsWith('X-containerd.mkfs.size='));
          if (!fs.existsSync(source)) {
            const size = Number(sizeOpt?.slice('X-containerd.mkfs.size='.length) ?? 0);
            if (!(size > 0)) throw new Error(`mkfs/${type} mount of ${source} has no X-containerd.mkfs.size`);
            fs.writeFileSync(source, '');
            fs.truncateSync(source, size);
            sh(`mkfs.${type}`, ['-q', source]);
          }
        } else {
          break;
        }
      }
      options = options.filter((o) => !o.startsWith('X-containerd.'));
      await doMount(type, source, options, dest, loops);
      if (last) finalMounted = true;
      targets.push(dest);
    }
  } catch (err) {
    release();
    throw err;
  }
  return { release };
}

async function doMount(type: string, source: string, options: string[], dest: string, loops: string[]): Promise<void> {
  if (type === 'bind' || type === 'rbind') {
    const recursive = type === 'rbind' || options.includes('rbind');
    sh('mount', [recursive ? '--rbind' : '--bind', source, dest]);
    if (options.includes('ro')) sh('mount', ['-o', 'remount,bind,ro', dest]);
    return;
  }
  if (type === 'overlay') {
    mountOverlay(options, dest);
    return;
  }
  if (type === 'erofs' && options.every((o) => o === 'ro' || o === 'loop')) {
    // What the loop option asks for, done the kernel >= 6.12 way (file-backed): a loop
    // device per layer per mount makes the 128-layer case take minutes.
    await mountErofsLayers([{ blob: source, target: dest }]);
    return;
  }
  const opts = options.map((o) => {
    if (!o.startsWith('device=')) return o;
    const loop = sh('losetup', ['-f', '--show', '-r', o.slice('device='.length)]).trim();
    loops.push(loop);
    return `device=${loop}`;
  });
  sh('mount', ['-t', type, '-o', opts.join(','), source, dest]);
}
