/** `stack-backup all` / `stack-backup NAME...`: the backup run (or its --dry-run plan). */
import { loadGlobalConfig, podmanSocketPath, selectStacks } from '../config/load.js';
import { assertOnlyUserCanWrite } from '../config/permissions.js';
import { UsageError } from '../errors.js';
import { exitCodeForReport, exitCodes } from '../exit-codes.js';
import { planStack } from '../plan.js';
import { rootOf, type GlobalOptions } from './options.js';
import { abortOnSignals } from './signals.js';

export async function backupCommand(targets: string[], options: GlobalOptions): Promise<number> {
  if (targets.length === 0) throw new UsageError('name the stacks to back up, or "all" (see --help)');
  const root = rootOf(options);
  const global = loadGlobalConfig(root, process.env);
  const stacks = selectStacks(root, global, targets);
  assertOnlyUserCanWrite(root, stacks.map((stack) => stack.file));
  const podmanSocket = podmanSocketPath(process.env);
  if (options.dryRun) {
    for (const stack of stacks) process.stdout.write(`${planStack(stack, global, podmanSocket).join('\n')}\n\n`);
    process.stdout.write(`Dry run: nothing was touched (${stacks.length} stack${stacks.length === 1 ? '' : 's'}).\n`);
    return exitCodes.success;
  }
  if (stacks.length === 0) {
    process.stderr.write(`no stacks in ${root}/stacks: nothing to back up\n`);
    return exitCodes.success;
  }
  const [{ runBackups }, { createAdapters }, { createProgress }, { systemClock }, { sendHttp }] = await Promise.all([
    import('../run.js'),
    import('../adapters/real.js'),
    import('../report.js'),
    import('../adapters/clock.js'),
    import('../adapters/http.js'),
  ]);
  const progress = createProgress(process.stderr, systemClock);
  const controller = new AbortController();
  const removeHandlers = abortOnSignals(controller, (text) => progress.message(text));
  try {
    const report = await runBackups({
      global,
      stacks,
      adapters: createAdapters(global, podmanSocket),
      sendHttp,
      progress,
      output: process.stderr,
      signal: controller.signal,
    });
    return exitCodeForReport(report, controller.signal);
  } finally {
    removeHandlers();
  }
}
