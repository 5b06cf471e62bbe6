import type { Command } from '../command';

// Not built yet: filled in by its issue.
export const versionCommand: Command = {
  name: 'version',
  summary: '(version: not built yet)',
  usage: 'erofs-vmdk version (not built yet)',
  async run() {
    process.stderr.write('erofs-vmdk version: not built yet\n');
    return 2;
  },
};
