/**
 * What an extent path may contain (design §5). QEMU reads the name with
 * `%511[^\n\r"]` and has no escaping, Cloud Hypervisor splits on whitespace, and
 * `parentFileNameHint` is a key readers search for anywhere in the text. Anything
 * outside these rules is refused, never quoted or escaped.
 */
import * as path from 'node:path';

export const MAX_EXTENT_PATH_BYTES = 511;

export interface PathProblem {
  code: string;
  message: string;
}

/** Printable form of a hostile path for a one-line message (quotes, CR, LF escaped). */
export function showPath(p: string): string {
  return JSON.stringify(p);
}

/** Problems that make `p` unusable inside an extent line, whether absolute or not. */
export function unsafePathProblem(p: string): PathProblem | undefined {
  if (p.length === 0) return { code: 'empty-path', message: 'empty path' };
  if (p.includes('"')) return { code: 'path-has-quote', message: `path ${showPath(p)} contains a double quote` };
  if (/[\r\n]/.test(p)) return { code: 'path-has-newline', message: `path ${showPath(p)} contains a CR or LF` };
  if (p.includes('\0')) return { code: 'path-has-nul', message: `path ${showPath(p)} contains a NUL byte` };
  if (/\s/.test(p)) return { code: 'path-has-whitespace', message: `path ${showPath(p)} contains whitespace` };
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) return { code: 'path-has-control', message: `path ${showPath(p)} contains a control character` };
  if (p.includes('parentFileNameHint')) {
    return { code: 'path-has-parent-hint', message: `path ${showPath(p)} contains "parentFileNameHint"` };
  }
  const bytes = Buffer.byteLength(p, 'utf8');
  if (bytes > MAX_EXTENT_PATH_BYTES) {
    return { code: 'path-too-long', message: `path ${showPath(p.slice(0, 60))}… is ${bytes} bytes, more than ${MAX_EXTENT_PATH_BYTES}` };
  }
  return undefined;
}

/** Every rule for a path we write: safe, absolute and already normalised. */
export function extentPathProblem(p: string): PathProblem | undefined {
  const unsafe = unsafePathProblem(p);
  if (unsafe) return unsafe;
  if (!path.isAbsolute(p)) return { code: 'relative-path', message: `path ${showPath(p)} is not absolute` };
  if (path.normalize(p) !== p || (p.length > 1 && p.endsWith('/'))) {
    return { code: 'path-not-normalized', message: `path ${showPath(p)} is not normalised` };
  }
  return undefined;
}

/**
 * The problem a content-addressed file `<dir>/<sha256>.erofs` would have as an
 * extent path (every such name has the same length and characters), so a
 * directory can be refused before anything is built or written into it.
 */
export function contentAddressedPathProblem(dir: string): PathProblem | undefined {
  return extentPathProblem(path.join(dir, `${'0'.repeat(64)}.erofs`));
}
