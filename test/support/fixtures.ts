import * as path from 'node:path';

/** Root of the repository (tests run from dist/test/..., sources live in test/). */
export const repoRoot = path.resolve(__dirname, '..', '..', '..');

/** The erofs-utils 1.9.3 fixture corpus, copied from ../shared/fixtures/erofs. */
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures', 'erofs');

export function fixture(...parts: string[]): string {
  return path.join(fixturesDir, ...parts);
}

/** The CLI launcher as installed by npm (bin/erofs-vmdk.js). */
export const cliPath = path.join(repoRoot, 'bin', 'erofs-vmdk.js');
