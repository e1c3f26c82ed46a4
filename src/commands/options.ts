/** What every command shares: the global options, which commands honour which, and the root. */
import { resolveRoot } from '../config/load.js';
import { UsageError } from '../errors.js';

export interface GlobalOptions {
  root?: string;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

export type GlobalOption = 'dryRun' | 'json' | 'quiet' | 'verbose';

const flags: Record<GlobalOption, string> = { dryRun: '--dry-run', json: '--json', quiet: '--quiet', verbose: '--verbose' };

/**
 * The global options work before or after the command; one the command cannot honour is a
 * usage error (exit 2), never silently ignored. --root is honoured by every command.
 */
export function assertHonoured(command: string, options: GlobalOptions, honoured: readonly GlobalOption[]): void {
  for (const option of Object.keys(flags) as GlobalOption[]) {
    if (options[option] && !honoured.includes(option)) {
      const can = honoured.map((name) => flags[name]).join(', ') || 'none of them';
      throw new UsageError(`"${command}" cannot honour ${flags[option]} (its global options: --root, ${can})`);
    }
  }
  if (options.quiet && options.verbose) throw new UsageError('--quiet and --verbose cannot be combined');
}

export function rootOf(options: GlobalOptions): string {
  return resolveRoot(options.root, process.env, process.cwd());
}
