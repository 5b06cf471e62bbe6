/**
 * Unix socket housekeeping for the listening sockets. A stale socket left by
 * a crashed daemon is removed; anything that is not a socket, or a socket a
 * live process still answers on, is left alone with a clear error.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

function isAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    const done = (alive: boolean) => {
      conn.destroy();
      resolve(alive);
    };
    conn.once('connect', () => done(true));
    conn.once('error', () => done(false));
    conn.setTimeout(1000, () => done(false));
  });
}

export async function prepareSocketPath(socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > 107) {
    throw new Error(`socket path ${socketPath} is longer than the 107 bytes a unix socket address can hold`);
  }
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o711 });
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; refusing to remove it`);
  }
  if (await isAlive(socketPath)) {
    throw new Error(`${socketPath}: another process is already serving on this socket`);
  }
  fs.unlinkSync(socketPath);
}

/** Creates the state directory owner-only (0700), tightening it if it exists. */
export function prepareRootDir(root: string): void {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  fs.chmodSync(root, 0o700);
}
