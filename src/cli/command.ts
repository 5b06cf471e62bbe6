/** One sub-command of the erofs-vmdk CLI. Each lives in src/cli/commands/<name>.ts. */
export interface Command {
  name: string;
  /** One line for the top-level help. */
  summary: string;
  /** Full usage text printed by `erofs-vmdk <name> --help`. */
  usage: string;
  /** Returns the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** Exit codes shared by all commands. */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_ERROR = 2;
