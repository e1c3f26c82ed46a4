/** What every command shares: the global options and the root folder they name. */
import { resolveRoot } from '../config/load.js';

export interface GlobalOptions {
  root?: string;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

export function rootOf(options: GlobalOptions): string {
  return resolveRoot(options.root, process.env, process.cwd());
}
