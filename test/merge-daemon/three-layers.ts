/**
 * The 3-layer image both merge-through-the-daemon tests use, built as real
 * EROFS blobs the way containerd's EROFS differ builds them: a directory per
 * layer in overlayfs form (whiteout = char device 0:0, opaque directory =
 * `trusted.overlay.opaque=y`), packed by Debian's `mkfs.erofs -Enoinline_data`.
 *
 *   layer 1 (bottom): etc/issue, etc/doomed, etc/keep, var/lib/app/{old,stale}, usr/share/doc/readme
 *   layer 2:          etc/message, etc/issue (replaced), var/lib/app/middle
 *   layer 3 (top):    etc/doomed whited out, var/lib/app opaque (only `fresh`), etc/top
 *
 * Expected merged tree (what the assertions name explicitly, on top of the
 * kernel-overlayfs oracle): etc/top and etc/message present with their
 * content, etc/issue from layer 2, etc/doomed absent, var/lib/app holding only
 * `fresh`, the bottom layer's etc/keep and usr/share/doc/readme present.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

type Entry = { file: string } | { whiteout: true } | { opaqueDir: true };

export const LAYERS: Record<string, Entry>[] = [
  {
    'etc/issue': { file: 'base layer issue\n' },
    'etc/doomed': { file: 'whited out by the top layer\n' },
    'etc/keep': { file: 'kept from the bottom layer\n' },
    'var/lib/app/old': { file: 'hidden by the opaque dir\n' },
    'var/lib/app/stale': { file: 'also hidden\n' },
    'usr/share/doc/readme': { file: 'x'.repeat(5000) },
  },
  {
    'etc/message': { file: 'hello from layer 2\n' },
    'etc/issue': { file: 'layer 2 issue\n' },
    'var/lib/app/middle': { file: 'hidden too\n' },
  },
  {
    'etc/doomed': { whiteout: true },
    'var/lib/app': { opaqueDir: true },
    'var/lib/app/fresh': { file: 'only entry of the opaque dir\n' },
    'etc/top': { file: 'from the top layer\n' },
  },
];

/** Paths the merged tree must (not) show, and files whose content is fixed. */
export const EXPECT = {
  present: ['etc/top', 'etc/message', 'etc/issue', 'etc/keep', 'var/lib/app/fresh', 'usr/share/doc/readme'],
  absent: ['etc/doomed', 'var/lib/app/old', 'var/lib/app/stale', 'var/lib/app/middle'],
  content: { 'etc/top': 'from the top layer\n', 'etc/issue': 'layer 2 issue\n', 'etc/message': 'hello from layer 2\n' } as Record<string, string>,
};

/** Materialises one layer directory in overlayfs form under `dir` (must not exist). */
export function materialiseLayer(dir: string, entries: Record<string, Entry>): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [rel, entry] of Object.entries(entries).sort(([a], [b]) => a.localeCompare(b))) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    if ('file' in entry) {
      fs.writeFileSync(p, entry.file, { mode: 0o644 });
    } else if ('whiteout' in entry) {
      execFileSync('mknod', ['-m', '000', p, 'c', '0', '0']);
    } else {
      fs.mkdirSync(p, { recursive: true, mode: 0o755 });
      execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p]);
    }
  }
}

/** Builds the three layer blobs under `dir`; returns their paths, bottom first. */
export function buildThreeLayerBlobs(dir: string): string[] {
  return LAYERS.map((entries, i) => {
    const src = path.join(dir, `layer${i + 1}.d`);
    const blob = path.join(dir, `layer${i + 1}.erofs`);
    materialiseLayer(src, entries);
    // -T: one timestamp per layer (a different one for each), so listings are
    // deterministic and show which layer a merged directory's attributes come from.
    execFileSync('mkfs.erofs', ['-Enoinline_data', `-T${1700000000 + i * 1000}`, `-U00000000-0000-4000-8000-00000000000${i + 1}`, blob, src], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return blob;
  });
}

/** Listing lines (expected.tsv format) keyed by their path column. */
export function listingPaths(listing: string): Set<string> {
  return new Set(
    listing
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('\t')[0]),
  );
}

/** `RW <sectors> FLAT "<path>" 0` extent files of a VMDK descriptor, in order. */
export function extentFiles(descriptor: string): string[] {
  return fs
    .readFileSync(descriptor, 'utf8')
    .split('\n')
    .map((l) => /^RW \d+ FLAT "(.*)" 0$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => m[1]);
}
