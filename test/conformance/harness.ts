/**
 * Runs every conformance case in a fresh temp dir with a fresh snapshotter
 * (like containerd's makeTest), and tears down every mount below the temp dir
 * afterwards, even when a case fails.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { mountsUnder, unmountUnder } from '../../src/backend/embedded/host-mounts';
import { allCases } from './cases';
import type { Snapshotter } from './snapshotter-client';

export interface SnapshotterFactory {
  (root: string): Promise<{ sn: Snapshotter; cleanup: () => Promise<void> }>;
}

/** Whether overlayfs follows renamed lower directories (redirect_dir on by default in this kernel). */
export function kernelRedirectDir(): boolean {
  try {
    return fs.readFileSync('/sys/module/overlay/parameters/redirect_dir', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

/** Defines one test per case (all 21, or only those named in `only`). */
export function defineSuite(name: string, factory: SnapshotterFactory, only?: string[]): void {
  for (const [caseName, fn] of allCases({ dirRename: kernelRedirectDir() })) {
    if (only && !only.includes(caseName)) continue;
    test(`${name}: ${caseName}`, async () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-'));
      const root = path.join(tmp, 'root');
      const work = path.join(tmp, 'work');
      fs.mkdirSync(root);
      fs.mkdirSync(work);
      const { sn, cleanup } = await factory(root);
      try {
        await fn(sn, work);
      } finally {
        try {
          await cleanup();
        } finally {
          unmountUnder(tmp);
          if (mountsUnder(tmp).length === 0) fs.rmSync(tmp, { recursive: true, force: true });
        }
      }
    });
  }
}
