/**
 * One stack's run: the forward steps in order until one fails, then every registered undo in
 * reverse (restore the unit per policy, unfreeze, post_start hooks), then the verify hooks.
 * The same unwinding serves a good run and a failed one, so a failure at any step leaves the
 * stack as the restore policy wants it.
 */
import { AbortedError, HookFailure, SnapshotKept, errorMessage } from '../errors.js';
import type { JobVerdict } from '../steps/context.js';
import type { BackupRun } from '../restore-test/state.js';
import { timelineOf } from './timeline.js';
import { runHookPhase } from '../steps/hooks.js';
import { runSequence, type Step } from '../steps/sequence.js';
import { stackSteps } from './sequence.js';
import { EarlyUndoError } from '../steps/snapshot.js';
import { undoExecution } from '../steps/undo-actions.js';
import type { UndoFailure } from '../journal/undo.js';
import { removesData } from '../journal/undo-records.js';
import { problems, type RunOutcome } from '../report/report.js';
import type { RestoreTestResult } from '../restore-test/state.js';
import { endReading, restoreAndCompare } from '../restore-test/test.js';

export interface StackResult extends RunOutcome {
  /**
   * Duplicati's verdict over the stack's jobs: the worst one seen; `completed` when the driver
   * saw each backup complete but not its result (exec: the record says it finished, not how),
   * `unknown` when it could not even see that, so a summary never says "success" for an unseen
   * result.
   */
  outcome: 'success' | 'warning' | 'completed' | 'unknown' | 'failed';
  /** stop: down while the jobs run; snapshot: down only while the data is snapshotted. */
  mode?: 'stop' | 'snapshot';
  downtimeMs: number | undefined;
  backupMs: number | undefined;
  /** Snapshot mode: the time the snapshots took (part of the downtime). */
  snapshotMs?: number | undefined;
  /** Snapshots left in place: kept for a Duplicati task that may still read them, or not removed. */
  snapshotsLeft?: string[];
  /** Paths that were to be removed but were kept, since they were not what stack-backup made: "PATH (why)". */
  keptPaths?: string[];
  /** Time the stack was down behind another job's Duplicati task. */
  queueMs?: number | undefined;
  logFile: string;
  /** The forward steps that were started, in order: the same names the dry run prints. */
  steps?: string[];
  /** Each job's result as Duplicati (or the driver) reported it, for the --json summary. */
  jobs?: JobVerdict[];
  /** The restore test's verdict, where one was due and the backup succeeded. */
  restoreTest?: RestoreTestResult;
}

/** A restore test found the backup would not come back as its source was: the run fails, the backup stays. */
export class RestoreTestFailure extends Error {
  override name = 'RestoreTestFailure';
}

function worstOutcome(results: readonly string[]): StackResult['outcome'] {
  if (results.includes('Unknown')) return 'unknown';
  // Completed: the exec driver saw the backup complete but cannot see its result.
  if (results.includes('Completed')) return 'completed';
  if (results.includes('Warning')) return 'warning';
  return 'success';
}

/** Everything that went wrong in a stack's run, in one list for the log, the history and the summary. */
function span(from: number | undefined, to: number | undefined): number | undefined {
  return from !== undefined && to !== undefined ? to - from : undefined;
}

export async function backupStack(run: BackupRun, steps: readonly Step<BackupRun>[] = stackSteps(run.stack, run.global)): Promise<StackResult> {
  const { log, timings, adapters } = run;
  const started = adapters.clock.now();
  log.info('stack run start', {
    unit: run.stack.unit,
    mode: run.stack.snapshot ? 'snapshot' : 'stop',
    jobs: run.stack.jobs,
    restore_policy: run.stack.restorePolicy,
    freeze: run.stack.freeze ?? false,
  });
  const walked = await runSequence(steps, run);
  let failure = walked.failure;
  const { startedSteps } = walked;
  // Looks at Duplicati begun with the stop end here, whatever ended the steps.
  run.stopWatch?.stop();
  // The restore test's reading of the stopped stack's data ends before the stack starts again.
  if (failure) await endReading(run);
  if (failure && run.undo.size > 0) {
    log.warn(`${failure.message}; restoring the stack`);
  }
  const { execute, observer } = undoExecution(run);
  // The stack first, its snapshots after: removing a large copy can take minutes, and the
  // stack must not wait for it (nor be cut short by systemd's stop timeout behind it).
  const lateFailures = [
    ...(await run.undo.settle((record) => !removesData(record), execute, observer)),
    ...(await run.undo.unwind(execute, observer)),
  ];
  const undoFailures: UndoFailure[] = [...(run.earlyUndoFailures ?? []), ...lateFailures];
  // With the stack running again: what was left to read (the last job's verdict). Its failure
  // fails the stack as a failing job does; an earlier failure stays the one reported.
  for (const read of run.afterStart?.splice(0) ?? []) {
    try {
      await read();
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(errorMessage(error));
    }
  }
  const restoreErrors = undoFailures.map((entry) => `${entry.name}: ${entry.error.message}`);
  if (!failure && restoreErrors.length === 0) {
    try {
      await runHookPhase(run, 'verify');
    } catch (error) {
      failure = error as Error;
    }
  }
  // With the stack running again: the restore test's restore and comparison (snapshot mode did
  // them before removing the snapshots). It never undoes the job's backup; a failing test fails the run.
  if (run.restoreTest && !run.restoreTest.result) {
    if (failure || restoreErrors.length > 0) log.info('restore test not run: the backup did not succeed');
    else {
      try {
        await restoreAndCompare(run);
      } catch (error) {
        failure = error instanceof Error ? error : new Error(errorMessage(error));
      }
    }
  }
  const restoreTest = run.restoreTest?.result;
  if (!failure && restoreTest && !restoreTest.passed) failure = new RestoreTestFailure(restoreTest.lines.map((line) => line.trim()).join('; '));
  // Checked last, so a write that failed during the verify hooks counts too.
  const unrecorded = [
    ...(run.journalFailures?.length ? [`the crash journal was not updated after the restore (${run.journalFailures[0]}); \`stack-backup recover\` clears it`] : []),
    ...(log.incomplete !== undefined ? [`the log is incomplete: ${log.incomplete}`] : []),
  ];
  const ok = !failure && restoreErrors.length === 0 && unrecorded.length === 0;
  const downtimeMs = span(timings.unitStopIssuedAt, timings.unitStartedAt);
  const backupMs = span(timings.backupStartedAt, timings.backupEndedAt);
  const snapshotMs = span(timings.snapshotStartedAt, timings.snapshotEndedAt);
  const mode = run.stack.snapshot ? 'snapshot' : 'stop';
  const snapshotsLeft = undoFailures.flatMap((entry) => (entry.record.kind === 'remove-snapshot' ? [entry.record.target] : []));
  const result: StackResult = {
    stack: run.stack.name,
    ok,
    // Snapshot mode's restore or removal failed mid-run: its failures are the restore errors already.
    error: failure instanceof EarlyUndoError ? undefined : failure?.message,
    restoreErrors,
    // A unit or socket that may not be back; a failed hook or a snapshot left is not that.
    notRestored: undoFailures.some(
      (entry) => (entry.record.kind === 'restore-unit' || entry.record.kind === 'unfreeze') && !(entry.error instanceof HookFailure),
    ),
    aborted: failure instanceof AbortedError,
    outcome: !ok ? 'failed' : worstOutcome(run.jobResults.map((entry) => entry.result)),
    mode,
    downtimeMs,
    backupMs,
    ...(mode === 'snapshot' ? { snapshotMs, snapshotsLeft } : {}),
    ...(run.keptPaths?.length ? { keptPaths: [...run.keptPaths] } : {}),
    queueMs: timings.queueMs,
    logFile: log.file,
    steps: startedSteps,
    unrecorded,
    jobs: [...run.jobResults],
    ...(restoreTest ? { restoreTest } : {}),
  };
  const fields = {
    outcome: result.outcome,
    job_results: run.jobResults,
    duration_ms: adapters.clock.now() - started,
    mode,
    downtime_ms: downtimeMs,
    backup_ms: backupMs,
    snapshot_ms: snapshotMs,
    snapshots_left: mode === 'snapshot' ? snapshotsLeft : undefined,
    snapshots_kept: undoFailures.filter((entry) => entry.error instanceof SnapshotKept).length || undefined,
    kept_paths: run.keptPaths,
    queue_ms: timings.queueMs,
    // The parts of the downtime that are the stack's own, for the benchmark and for tuning.
    unit_stop_ms: span(timings.unitStopIssuedAt, timings.unitStoppedAt),
    containers_wait_ms: span(timings.unitStoppedAt, timings.containersGoneAt),
    unit_start_ms: span(timings.unitStartIssuedAt, timings.unitStartedAt),
    unit_was_active: timings.unitWasActive,
    error: result.error,
    restore_errors: restoreErrors,
    unrecorded,
    restore_test: restoreTest,
  };
  const timeline = timelineOf(timings);
  if (timeline) log.info(`timeline: ${timeline.text}`, { timeline: timeline.instants, timeline_gaps_ms: timeline.gaps });
  if (ok) log.info('stack run end', fields);
  else log.error(`stack run failed: ${problems(result).join('; ')}`, fields);
  return result;
}
