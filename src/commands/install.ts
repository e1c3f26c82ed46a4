/** `stack-backup install`: the user timer and service for this root. */
import { listStackNames } from '../config/load.js';
import { exitCodes } from '../exit-codes.js';
import { installPaths, installUnits, renderUnits } from '../install.js';
import { rootOf, type GlobalOptions } from './options.js';
import { withSignals } from './signals.js';

export async function installCommand(options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  listStackNames(root);
  const paths = installPaths(root, process.env, process.argv[1]);
  if (options.dryRun) {
    for (const unit of renderUnits(paths)) process.stdout.write(`# ${paths.unitDir}/${unit.name}\n${unit.text}\n`);
    return exitCodes.success;
  }
  const { createSystemdManager } = await import('../adapters/real.js');
  return withSignals((text) => process.stderr.write(`${text}\n`), 'finishing the step under way', async (signal) => {
    await installUnits(paths, createSystemdManager(), (text) => process.stdout.write(`${text}\n`), signal);
    return exitCodes.success;
  });
}
