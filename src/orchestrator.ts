/**
 * One stack's run: the forward steps in order until one fails, then every registered undo in
 * reverse (restore the unit per policy, unfreeze, post_start hooks), then the verify hooks.
 * The same unwinding serves a good run and a failed one, so a failure at any step leaves the
 * stack as the restore policy wants it.
 */
import { AbortedError, HookFailure, errorMessage } from './errors.js';
import { runBackupJobs, waitForDuplicatiIdle, waitForDuplicatiIdleAfterStop } from './steps/backup.js';
import type { JobVerdict, StackRun } from './steps/context.js';
import { freezeOnDemand } from './steps/freeze.js';
import { preStopHooks, runHookPhase } from './steps/hooks.js';
import { preflight } from './steps/preflight.js';
import { stopUnit } from './steps/stop-unit.js';
import { performUndo } from './steps/undo-actions.js';
import { waitForContainers } from './steps/wait-containers.js';

export interface StackResult {
  stack: string;
  ok: boolean;
  /** The forward step's or verify's failure, if any. */
  error: string | undefined;
  /** Undos that failed, hooks included. */
  restoreErrors: string[];
  /** A unit or socket may not be as it was: an undo other than a hook failed. */
  notRestored: boolean;
  aborted: boolean;
  /**
   * Duplicati's verdict over the stack's jobs: the worst one seen; `unknown` when the driver
   * could not see a result (exec), so a summary never says "success" for an unseen result.
   */
  outcome: 'success' | 'warning' | 'unknown' | 'failed';
  downtimeMs: number | undefined;
  backupMs: number | undefined;
  logFile: string;
  /** Each job's result as Duplicati (or the driver) reported it, for the --json summary. */
  jobs?: JobVerdict[];
}

type Step = (run: StackRun) => Promise<void>;

/**
 * Once the unit is stopped: its containers must exit, and Duplicati must hold no task that
 * began before the stop. Both are waits on the outside world, so they overlap; if one fails,
 * the other is ended.
 */
async function waitForStackDown(run: StackRun): Promise<void> {
  const controller = new AbortController();
  const forward = () => controller.abort(run.signal.reason);
  run.signal.addEventListener('abort', forward, { once: true });
  const idle = waitForDuplicatiIdleAfterStop({ ...run, signal: controller.signal });
  // Its failure is awaited below; until then it must not count as unhandled and end the process.
  idle.catch(() => {});
  try {
    await waitForContainers(run);
  } catch (error) {
    controller.abort(error);
    await idle.catch(() => {});
    throw error;
  } finally {
    run.signal.removeEventListener('abort', forward);
  }
  await idle;
}

export const forwardSteps: readonly Step[] = [
  preflight,
  waitForDuplicatiIdle,
  preStopHooks,
  freezeOnDemand,
  stopUnit,
  waitForStackDown,
  (run) => runHookPhase(run, 'post_stop'),
  (run) => runHookPhase(run, 'pre_backup'),
  runBackupJobs,
  (run) => runHookPhase(run, 'post_backup'),
];

function worstOutcome(results: readonly string[]): StackResult['outcome'] {
  if (results.includes('Unknown')) return 'unknown';
  if (results.includes('Warning')) return 'warning';
  return 'success';
}

function span(from: number | undefined, to: number | undefined): number | undefined {
  return from !== undefined && to !== undefined ? to - from : undefined;
}

export async function backupStack(run: StackRun): Promise<StackResult> {
  const { log, timings, adapters } = run;
  const started = adapters.clock.now();
  log.info('stack run start', {
    unit: run.stack.unit,
    jobs: run.stack.jobs,
    restore_policy: run.stack.restorePolicy,
    freeze: run.stack.freeze ?? false,
  });
  let failure: Error | undefined;
  for (const step of forwardSteps) {
    try {
      await step(run);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(errorMessage(error));
      break;
    }
  }
  if (failure && run.undo.size > 0) {
    log.warn(`${failure.message}; restoring the stack`);
  }
  const context = { systemd: adapters.systemd, runHook: adapters.runHook, clock: adapters.clock, log, timings };
  const undoFailures = await run.undo.unwind((record, signal) => performUndo(record, context, signal), {
    started: (name) => log.info('undo start', { undo: name }),
    finished: (name, error) =>
      error ? log.error(`undo "${name}" failed: ${error.message}`, { undo: name }) : log.info('undo done', { undo: name }),
    journalFailed: (error) => log.warn(`cannot update the crash journal: ${error.message}`),
  });
  const restoreErrors = undoFailures.map((entry) => `${entry.name}: ${entry.error.message}`);
  if (!failure && restoreErrors.length === 0) {
    try {
      await runHookPhase(run, 'verify');
    } catch (error) {
      failure = error as Error;
    }
  }
  const ok = !failure && restoreErrors.length === 0;
  const downtimeMs = span(timings.unitStopIssuedAt, timings.unitStartedAt);
  const backupMs = span(timings.backupStartedAt, timings.backupEndedAt);
  const result: StackResult = {
    stack: run.stack.name,
    ok,
    error: failure?.message,
    restoreErrors,
    notRestored: undoFailures.some((entry) => !(entry.error instanceof HookFailure)),
    aborted: failure instanceof AbortedError,
    outcome: !ok ? 'failed' : worstOutcome(run.jobResults.map((entry) => entry.result)),
    downtimeMs,
    backupMs,
    logFile: log.file,
    jobs: [...run.jobResults],
  };
  const fields = {
    outcome: result.outcome,
    job_results: run.jobResults,
    duration_ms: adapters.clock.now() - started,
    downtime_ms: downtimeMs,
    backup_ms: backupMs,
    // The parts of the downtime that are the stack's own, for the benchmark and for tuning.
    unit_stop_ms: span(timings.unitStopIssuedAt, timings.unitStoppedAt),
    containers_wait_ms: span(timings.unitStoppedAt, timings.containersGoneAt),
    unit_start_ms: span(timings.unitStartIssuedAt, timings.unitStartedAt),
    unit_was_active: timings.unitWasActive,
    error: result.error,
    restore_errors: restoreErrors,
  };
  if (ok) log.info('stack run end', fields);
  else log.error(`stack run failed: ${[result.error, ...restoreErrors].filter(Boolean).join('; ')}`, fields);
  return result;
}
