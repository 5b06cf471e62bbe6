import type { Command } from '../command';

// Not built yet: filled in by its issue.
export const mergeCommand: Command = {
  name: 'merge',
  summary: '(merge: not built yet)',
  usage: 'erofs-vmdk merge (not built yet)',
  async run() {
    process.stderr.write('erofs-vmdk merge: not built yet\n');
    return 2;
  },
};
