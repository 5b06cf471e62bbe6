import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from '../command';
import { EXIT_OK } from '../command';

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// dist/src/cli/commands -> repository root (package.json ships with the package).
const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');

export const versionCommand: Command = {
  name: 'version',
  summary: 'print the version of erofs-vmdk and of the APIs it speaks',
  usage: 'Usage: erofs-vmdk version\n\nPrints the erofs-vmdk version, the Node.js version, the gRPC API served and the mount contract versions.',
  async run() {
    const grpcJs = packageVersion(path.dirname(require.resolve('@grpc/grpc-js/package.json')));
    process.stdout.write(
      [
        `erofs-vmdk ${packageVersion(repoRoot)}`,
        `  api:        containerd.services.snapshots.v1.Snapshots, grpc.health.v1.Health`,
        `  mount:      contract v2 (default: fuse.erofs-vmdk-mount, X-erofs-vmdk.contract=2), v1 (vmdk, X-vmdk.fs=erofs, X-vmdk.layout=flat)`,
        `  node:       ${process.version}`,
        `  grpc-js:    ${grpcJs}`,
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  },
};
