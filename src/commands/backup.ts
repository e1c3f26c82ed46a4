/** `stack-backup all` / `stack-backup NAME...`: the backup run (or its --dry-run plan). */
import { listStackNames, loadGlobalConfig, podmanSocketPath, selectStacks } from '../config/load.js';
import { assertOnlyUserCanWrite } from '../config/permissions.js';
import { UsageError } from '../errors.js';
import { exitCodeForReport, exitCodes } from '../exit-codes.js';
import { secondsOf, writeJson } from '../report/json-output.js';
import { restoreTestJson } from '../backup/monitor.js';
import type { StackResult } from '../backup/orchestrator.js';
import { planStack } from '../backup/plan.js';
import type { Verbosity } from '../report/report.js';
import type { RunReport } from '../backup/run.js';
import { rootOf, type GlobalOptions } from './options.js';
import { abortOnSignals } from './signals.js';

export function verbosityOf(options: GlobalOptions): Verbosity {
  return options.quiet ? 'quiet' : options.verbose ? 'verbose' : 'normal';
}

function stackJson(result: StackResult) {
  return {
    stack: result.stack,
    result: result.ok ? 'success' : 'failed',
    outcome: result.outcome,
    left_down: result.notRestored,
    // The old name of left_down, inverted: kept for one release.
    restored: !result.notRestored,
    aborted: result.aborted,
    mode: result.mode ?? 'stop',
    downtime_seconds: secondsOf(result.downtimeMs),
    backup_seconds: secondsOf(result.backupMs),
    snapshot_seconds: secondsOf(result.snapshotMs),
    snapshots_left: result.snapshotsLeft ?? [],
    kept_paths: result.keptPaths ?? [],
    restore_test: restoreTestJson(result),
    jobs: (result.jobs ?? []).map((job) => ({ job: job.job, result: job.result, message: job.message ?? null })),
    error: result.error ?? null,
    undo_errors: result.restoreErrors,
    // The old name of undo_errors: kept for one release.
    restore_errors: result.restoreErrors,
    // What the run could not write down (log, journal): a reason to fail it, beside error.
    unrecorded: result.unrecorded ?? [],
    log_file: result.logFile,
  };
}

/** The run's summary as a JSON document's body (see report/json-output.ts). */
export function runJson(root: string, report: RunReport, startedAt: Date, endedAt: Date, exitCode: number) {
  return {
    root,
    started_at: startedAt.toISOString(),
    ended_at: endedAt.toISOString(),
    exit_code: exitCode,
    recovery: { restored: report.recovery.restored, failed: report.recovery.failed },
    stacks: [
      ...report.results.map(stackJson),
      ...[...(report.locked ?? []).map(({ stack, reason }) => ({ stack, reason })), ...report.skipped.map((stack) => ({ stack, reason: 'run aborted before this stack' }))].map(({ stack, reason }) => ({
        stack,
        result: 'not_run',
        outcome: null,
        left_down: false,
        restored: true,
        aborted: true,
        mode: null,
        downtime_seconds: null,
        backup_seconds: null,
        snapshot_seconds: null,
        snapshots_left: [],
        kept_paths: [],
        restore_test: null,
        jobs: [],
        error: reason,
        undo_errors: [],
        restore_errors: [],
        unrecorded: [],
        log_file: null,
      })),
    ],
  };
}

export async function backupCommand(targets: string[], options: GlobalOptions): Promise<number> {
  if (targets.length === 0) throw new UsageError('name the stacks to back up, or "all" (see --help)');
  const root = rootOf(options);
  const global = loadGlobalConfig(root, process.env);
  const stacks = selectStacks(root, global, targets);
  // `all` over nothing is a configuration mistake (a wrong --root, say), not a quiet success.
  if (stacks.length === 0) throw new UsageError(`no stacks in ${root}/stacks`);
  assertOnlyUserCanWrite(root, stacks.map((stack) => stack.file));
  const podmanSocket = podmanSocketPath(process.env);
  if (options.dryRun) {
    // With --json the plan goes to standard error, so standard output stays one document.
    const out = options.json ? process.stderr : process.stdout;
    for (const stack of stacks) out.write(`${planStack(stack, global, podmanSocket).join('\n')}\n\n`);
    out.write(`Dry run: nothing was touched (${stacks.length} stack${stacks.length === 1 ? '' : 's'}).\n`);
    if (options.json) {
      writeJson(process.stdout, { root, dry_run: true, stacks: stacks.map((stack) => ({ stack: stack.name, plan: planStack(stack, global, podmanSocket).map((line) => line.replace(/^\s*\d+\.\s/, '')) })) });
    }
    return exitCodes.success;
  }
  const [{ runBackups }, { createAdapters }, { createProgress }, { systemClock }, { sendHttp }] = await Promise.all([
    import('../backup/run.js'),
    import('../adapters/real.js'),
    import('../report/report.js'),
    import('../adapters/clock.js'),
    import('../adapters/http.js'),
  ]);
  const progress = createProgress(process.stderr, systemClock, verbosityOf(options));
  const controller = new AbortController();
  const removeHandlers = abortOnSignals(controller, (text) => progress.message(text));
  const startedAt = new Date();
  try {
    const report = await runBackups({
      global,
      stacks,
      configured: listStackNames(root),
      // The exec driver's sessions into the Duplicati container: runBackups closes them at its end.
      adapters: createAdapters(global, podmanSocket, { sessions: true }),
      sendHttp,
      progress,
      output: process.stderr,
      signal: controller.signal,
    });
    const code = exitCodeForReport(report, controller.signal);
    if (options.json) writeJson(process.stdout, runJson(root, report, startedAt, new Date(), code));
    return code;
  } finally {
    removeHandlers();
  }
}
