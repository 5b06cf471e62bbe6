/**
 * erofs-vmdk-mount: the host mount helper of contract v2 (docs/contract-v2.md,
 * docs/mount-helper.md). mount.fuse3 runs it as
 * `erofs-vmdk-mount SRC TARGET -o OPTS` for a mount of type
 * `fuse.erofs-vmdk-mount`; it makes plain kernel mounts (loop devices, EROFS,
 * ext4, overlayfs) and exits. No FUSE daemon is involved.
 *
 * Exit codes: 0 mounted; 2 refused (argv, option, config, trust root,
 * descriptor, image checks, an upper image already in use); 1 a mount step
 * failed. On 1 and 2 nothing is left behind (whatever was done is undone) and
 * stderr holds exactly one line.
 *
 * Start-up cost matters (it runs on every container start): this module and
 * its imports load only node built-ins (smol-toml lazily, when a config file
 * exists), never the daemon's gRPC/SQLite/zod/pino/prom-client stack.
 */
import { parseArguments } from './arguments';
import { EXIT_FAILED, HelperError, oneLine } from './errors';
import { hostMount, prepareMount } from './host-mount';
import { loadTrustConfig, resolveTrustRoots } from './trust-roots';

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const request = parseArguments(argv);
    const roots = resolveTrustRoots(loadTrustConfig(env));
    await hostMount(prepareMount(request, roots));
    return 0;
  } catch (err) {
    const helperError = err instanceof HelperError ? err : undefined;
    const message = helperError ? helperError.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`;
    process.stderr.write(`erofs-vmdk-mount: ${oneLine(message)}\n`);
    return helperError ? helperError.exitCode : EXIT_FAILED;
  }
}
