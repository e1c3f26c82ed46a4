/** `stack-backup install` and `uninstall`: this root's user timer and service. */
import { listStackNames, loadGlobalConfig, loadStack } from '../config/load.js';
import { exitCodes } from '../exit-codes.js';
import { installPaths, installUnits, installedRoots, renderUnits, stopTimeoutSeconds, uninstallUnits, unitDirectory, unitNames } from '../host/install.js';
import { rootOf, type GlobalOptions } from './options.js';
import { withSignals } from './signals.js';

/** The TimeoutStopSec= this root's configuration needs; bad configuration is refused here (exit 2). */
export function requiredStopTimeout(root: string): number {
  const global = loadGlobalConfig(root, process.env);
  return stopTimeoutSeconds(listStackNames(root).map((name) => loadStack(root, name, global)));
}

export async function installCommand(options: GlobalOptions & { list?: boolean }): Promise<number> {
  if (options.list) {
    const installed = installedRoots(unitDirectory(process.env));
    if (installed.length === 0) process.stdout.write('no root has a stack-backup timer installed\n');
    for (const entry of installed) process.stdout.write(`${entry.root}\t${entry.timer}\n`);
    return exitCodes.success;
  }
  const root = rootOf(options);
  const stopTimeout = requiredStopTimeout(root);
  const paths = installPaths(root, process.env, process.argv[1]);
  if (options.dryRun) {
    for (const unit of renderUnits(paths, stopTimeout)) process.stdout.write(`# ${paths.unitDir}/${unit.name}\n${unit.text}\n`);
    return exitCodes.success;
  }
  const { createSystemdManager } = await import('../adapters/real.js');
  return withSignals((text) => process.stderr.write(`${text}\n`), 'finishing the step under way', async (signal) => {
    await installUnits(paths, stopTimeout, createSystemdManager(), (text) => process.stdout.write(`${text}\n`), signal);
    return exitCodes.success;
  });
}

export async function uninstallCommand(options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  const unitDir = unitDirectory(process.env);
  const names = unitNames(root);
  if (options.dryRun) {
    process.stdout.write(`would disable ${names.timer} and remove ${unitDir}/${names.timer} and ${unitDir}/${names.service}\n`);
    return exitCodes.success;
  }
  const { createSystemdManager } = await import('../adapters/real.js');
  return withSignals((text) => process.stderr.write(`${text}\n`), 'finishing the step under way', async (signal) => {
    const removed = await uninstallUnits(root, unitDir, createSystemdManager(), (text) => process.stdout.write(`${text}\n`), signal);
    if (!removed) process.stdout.write(`nothing to uninstall: ${root} has no ${names.timer}\n`);
    return exitCodes.success;
  });
}
