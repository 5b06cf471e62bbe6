/**
 * The CLI writes its output with writeFileAtomic (temp file + rename). When
 * `--out` names one of the inputs — the same path, a symlink or a hard link to
 * it — the rename would replace that layer blob or fsmeta with our output and
 * its data would be gone. Inputs exist by definition, so an output that does
 * not exist yet cannot be one; an existing output is compared by identity
 * (device + inode), which catches every way of naming the same file.
 */
import * as fs from 'node:fs';

/** The first input that is the same file as `out`, or undefined. */
export function inputOverwrittenBy(out: string, inputs: string[]): string | undefined {
  const target = fs.statSync(out, { throwIfNoEntry: false });
  if (!target) return undefined;
  return inputs.find((input) => {
    const st = fs.statSync(input, { throwIfNoEntry: false });
    return st !== undefined && st.dev === target.dev && st.ino === target.ino;
  });
}

/**
 * Why `out` cannot be replaced, or undefined. The atomic write renames a new
 * regular file over `out`: run as root, `--out /dev/null` would replace the
 * device node itself, so anything that exists and is not a regular file is
 * refused. (A symlink is followed for the check; the rename replaces the link.)
 */
export function unreplaceableOutput(out: string): string | undefined {
  const st = fs.statSync(out, { throwIfNoEntry: false });
  return st !== undefined && !st.isFile() ? 'exists and is not a regular file' : undefined;
}
