#!/usr/bin/env node
/**
 * The command line: parses arguments, builds the real adapters, and sets the exit code
 * through exit-codes.ts.
 */
import { Command, CommanderError, Option } from 'commander';
import { listStackNames, loadGlobalConfig, loadStack, podmanSocketPath, resolveRoot, saveConfigCaches, selectStacks } from './config/load.js';
import { assertOnlyUserCanWrite } from './config/permissions.js';
import { AbortedError, LockHeldError, UsageError, errorMessage } from './errors.js';
import { exitWhenDone } from './adapters/exit.js';
import { exitCodeFor, exitCodeForReport, exitCodes } from './exit-codes.js';
import { installPaths, installUnits, renderUnits } from './install.js';
import { planStack } from './plan.js';
import { formatTable } from './report.js';

interface GlobalOptions {
  root?: string;
}

function rootOf(options: GlobalOptions): string {
  return resolveRoot(options.root, process.env, process.cwd());
}

function listCommand(options: GlobalOptions & { json?: boolean }): void {
  const root = rootOf(options);
  const global = loadGlobalConfig(root, process.env);
  const stacks = listStackNames(root).map((name) => loadStack(root, name, global));
  if (options.json) {
    const entries = stacks.map((stack) => ({
      name: stack.name,
      file: stack.file,
      unit: stack.unit,
      jobs: stack.jobs,
      restore_policy: stack.restorePolicy,
      freeze_ondemand: stack.freeze !== undefined,
      ondemand_socket: stack.freeze?.socket ?? null,
      ondemand_service: stack.freeze?.service ?? null,
      container_label: `${stack.selector.key}=${stack.selector.value}`,
    }));
    process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return;
  }
  const rows = stacks.map((stack) => [
    stack.name,
    stack.unit,
    stack.jobs.join(','),
    stack.restorePolicy,
    stack.freeze ? `yes (${[stack.freeze.socket, stack.freeze.service].filter(Boolean).join(', ')})` : 'no',
  ]);
  process.stdout.write(`${formatTable(['STACK', 'UNIT', 'JOBS', 'RESTORE', 'FREEZE'], rows).join('\n')}\n`);
  if (rows.length === 0) process.stdout.write(`(no stacks in ${root}/stacks)\n`);
}

/** SIGTERM, SIGINT, SIGHUP abort the forward steps; the undos still run, also after a second signal. */
function abortOnSignals(controller: AbortController, report: (text: string) => void): () => void {
  const handlers = (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((name) => {
    const handler = () => {
      if (controller.signal.aborted) {
        report(`${name} received again: still restoring the stack, please wait`);
        return;
      }
      report(`${name} received: ending the step under way and restoring the stack`);
      controller.abort(new AbortedError(name));
    };
    process.on(name, handler);
    return () => process.off(name, handler);
  });
  return () => handlers.forEach((remove) => remove());
}

async function backupCommand(targets: string[], options: GlobalOptions & { dryRun?: boolean }): Promise<number> {
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
    import('./run.js'),
    import('./adapters/real.js'),
    import('./report.js'),
    import('./adapters/clock.js'),
    import('./adapters/http.js'),
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

async function recoverCommand(options: GlobalOptions & { dryRun?: boolean }): Promise<number> {
  const root = rootOf(options);
  loadGlobalConfig(root, process.env);
  assertOnlyUserCanWrite(root, []);
  if (options.dryRun) {
    const [{ createJournal }, { isRootLocked }, { recoveryPlan }] = await Promise.all([import('./journal.js'), import('./adapters/lock.js'), import('./recover.js')]);
    process.stdout.write(`${recoveryPlan(createJournal(root, '').pending(), await isRootLocked(root)).join('\n')}\n`);
    return exitCodes.success;
  }
  const [{ acquireRootLock }, { createJournal }, { recoverPending }, { createRecoveryAdapters }, { createProgress }, { randomUUID }] =
    await Promise.all([
      import('./adapters/lock.js'),
      import('./journal.js'),
      import('./recover.js'),
      import('./adapters/real.js'),
      import('./report.js'),
      import('node:crypto'),
    ]);
  const adapters = createRecoveryAdapters();
  const progress = createProgress(process.stderr, adapters.clock);
  let release: () => Promise<void>;
  try {
    release = await acquireRootLock(root, (error) => progress.message(`warning: the lock was lost: ${error.message}`));
  } catch (error) {
    if (error instanceof LockHeldError) {
      throw new LockHeldError(`${error.message}: a run is in progress, and the journal of a live run is never replayed`);
    }
    throw error;
  }
  try {
    const runId = randomUUID();
    const journal = createJournal(root, runId);
    if (journal.pending().length === 0) {
      process.stdout.write('nothing to recover: no run left a stack stopped or frozen\n');
      return exitCodes.success;
    }
    const report = await recoverPending(root, journal, runId, { ...adapters, progress });
    for (const line of report.restored) process.stdout.write(`recovered: ${line}\n`);
    for (const line of report.failed) process.stdout.write(`NOT RECOVERED: ${line}\n`);
    return report.failed.length === 0 ? exitCodes.success : exitCodes.stackFailed;
  } finally {
    await release().catch(() => {});
  }
}

async function statusCommand(options: GlobalOptions & { json?: boolean }): Promise<number> {
  const root = rootOf(options);
  const [{ readHistory }, { createJournal }, { isRootLocked }, { stackStatuses, statusExitCode, formatStatus }] = await Promise.all([
    import('./history.js'),
    import('./journal.js'),
    import('./adapters/lock.js'),
    import('./status.js'),
  ]);
  const runInProgress = await isRootLocked(root);
  const statuses = stackStatuses(listStackNames(root), readHistory(root), createJournal(root, '').pending(), runInProgress);
  if (options.json) process.stdout.write(`${JSON.stringify({ run_in_progress: runInProgress, stacks: statuses }, null, 2)}\n`);
  else process.stdout.write(formatStatus(statuses, runInProgress));
  return statusExitCode(statuses);
}

async function doctorCommand(targets: string[], options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  const [{ runDoctor, formatChecks }, real, { createContainerEngine }, { checkFolder }] = await Promise.all([
    import('./doctor.js'),
    import('./adapters/real.js'),
    import('./adapters/podman.js'),
    import('./adapters/files.js'),
  ]);
  const checks = await runDoctor(root, targets, {
    environment: process.env,
    systemd: real.createRecoveryAdapters().systemd,
    createEngine: createContainerEngine,
    createDuplicati: (global) => real.createDuplicati(global.duplicati),
    checkFolder,
  });
  process.stdout.write(formatChecks(checks));
  const failed = checks.filter((check) => !check.ok).length;
  process.stdout.write(failed === 0 ? 'All checks passed.\n' : `${failed} check${failed === 1 ? '' : 's'} failed.\n`);
  return failed === 0 ? exitCodes.success : exitCodes.stackFailed;
}

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('stack-backup');
  program
    .description(
      'Back up rootless-Podman stacks with Duplicati, one at a time: stop the stack, run its Duplicati jobs, and bring it back.',
    )
    .argument('[stacks...]', '"all", or stack names (a unit name such as cryptpad-stack.service is accepted)')
    .option('--root <dir>', 'folder with stacks/, hooks/, logs/ and stack-backup.yaml (default: $STACK_BACKUP_ROOT, else the current folder)')
    .option('--dry-run', 'print each stack\'s planned steps and touch nothing')
    .addHelpText(
      'after',
      `
Examples:
  stack-backup all                      every stack, in name order
  stack-backup cryptpad nextcloud       these stacks, in this order
  stack-backup --dry-run all            show what would be done
  stack-backup list --json              the configured stacks
  stack-backup status                   last runs; exit 1 when one failed or recovery is pending
  stack-backup recover                  put back what a killed run left stopped or frozen
  stack-backup recover --dry-run        show what recover would do
  stack-backup doctor                   check everything a run needs, touching nothing

Exit codes: 0 every stack backed up; 1 a stack failed (each still restored per its policy);
2 usage or configuration error (nothing touched); 75 another run holds the lock;
129/130/143 ended by SIGHUP/SIGINT/SIGTERM after restoring the stack.`,
    )
    .showHelpAfterError()
    .exitOverride()
    .action(async (targets: string[], options: GlobalOptions & { dryRun?: boolean }) => {
      setExitCode(await backupCommand(targets, options));
    });
  program
    .command('list')
    .description('list every stack with its unit, jobs, restore policy and freeze setting')
    .addOption(new Option('--json', 'print JSON'))
    .action(function (this: Command) {
      listCommand(this.optsWithGlobals());
      setExitCode(exitCodes.success);
    });
  program
    .command('recover')
    .description('put back what a run that died (SIGKILL, power loss) left: start the units that were active, unfreeze sockets')
    .option('--dry-run', 'print what recovery would do, with the exact commands, and touch nothing')
    .action(async function (this: Command) {
      setExitCode(await recoverCommand(this.optsWithGlobals()));
    });
  program
    .command('status')
    .description('per stack: last run, result, downtime, backup duration, last success, pending recovery; exit 1 when one needs a look')
    .addOption(new Option('--json', 'print JSON'))
    .action(async function (this: Command) {
      setExitCode(await statusCommand(this.optsWithGlobals()));
    });
  program
    .command('doctor')
    .description('check, touching nothing, everything a run needs: configs, permissions, Podman, Duplicati and its jobs, units, backup_mount, the timer')
    .argument('[stacks...]', 'only these stacks (default: every stack)')
    .action(async function (this: Command, targets: string[]) {
      setExitCode(await doctorCommand(targets, this.optsWithGlobals()));
    });
  program
    .command('install')
    .description('write stack-backup.service and stack-backup.timer into ~/.config/systemd/user for this root, reload, and enable the timer')
    .option('--dry-run', 'print the unit files and touch nothing')
    .action(async function (this: Command) {
      const options = this.optsWithGlobals<GlobalOptions & { dryRun?: boolean }>();
      const root = rootOf(options);
      listStackNames(root);
      const paths = installPaths(root, process.env, process.argv[1]);
      if (options.dryRun) {
        for (const unit of renderUnits(paths)) {
          process.stdout.write(`# ${paths.unitDir}/${unit.name}\n${unit.text}\n`);
        }
      } else {
        const { createSystemdManager } = await import('./adapters/real.js');
        await installUnits(paths, createSystemdManager(), (text) => process.stdout.write(`${text}\n`));
      }
      setExitCode(exitCodes.success);
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  let code: number = exitCodes.success;
  try {
    await buildProgram((value) => (code = value)).parseAsync([...argv], { from: 'user' });
  } catch (error) {
    code = exitCodeFor(error);
    if (!(error instanceof CommanderError)) process.stderr.write(`stack-backup: ${errorMessage(error)}\n`);
  }
  saveConfigCaches();
  return code;
}

process.exitCode = await main(process.argv.slice(2));
exitWhenDone();
