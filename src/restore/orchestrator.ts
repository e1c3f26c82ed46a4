/**
 * One stack's restore: the listed steps forward until one fails. Before the swap a failure
 * unwinds as a backup's does (the stack started on its old data, the staging folders removed
 * last). After it, a failed start or verify hook takes the stack back to its old data: stopped
 * again, renamed back, started; the restored copy is kept and named. A verified restore keeps
 * the swap, and the old data beside it (restore.keep_old), named with the command that removes it.
 */
import { AbortedError, HookFailure, SnapshotKept } from '../errors.js';
import { problems, type RunOutcome } from '../report/report.js';
import { runSequence, type Step } from '../steps/sequence.js';
import { undoExecution } from '../steps/undo-actions.js';
import type { UndoFailure } from '../journal/undo.js';
import { removesData } from '../journal/undo-records.js';
import type { RestoreRun } from './context.js';
import { rollbackSteps } from './sequence.js';
import { commitSwap, removeOldData } from './steps.js';

export interface RestoreResult extends RunOutcome {
  /** The restored data is in place and the stack passed its verify hooks. */
  restored: boolean;
  /** The restored data was swapped in, then the old data put back (a failed start or verify hook). */
  rolledBack: boolean;
  versions: Array<{ job: string; version: number; time: string }>;
  paths: Array<{
    path: string;
    job: string;
    /** Files and links Duplicati restored. */
    files: number | undefined;
    bytes: number | undefined;
    /** Where the data it replaced is kept; null when it was removed (keep_old false) or there was none. */
    old: string | null;
    /** Where the restored copy is kept after it was rolled back; null otherwise. */
    restoredCopy: string | null;
  }>;
  downtimeMs: number | undefined;
  durationMs: number;
  /** Paths kept since they were not stack-backup's, or could not be removed. */
  kept: string[];
  logFile: string;
  steps: string[];
  unrecorded: string[];
}

function span(from: number | undefined, to: number | undefined): number | undefined {
  return from !== undefined && to !== undefined ? to - from : undefined;
}

/**
 * The way back after a swap (rollbackSteps), walked as any list is. Like an undo it does not
 * listen to SIGTERM: it is the way back.
 */
async function rollBack(run: RestoreRun, steps: readonly Step<RestoreRun>[]): Promise<Error | undefined> {
  run.log.warn('putting the old data back: stopping the stack again, renaming back, starting it');
  const signal = run.signal;
  run.signal = new AbortController().signal;
  try {
    return (await runSequence(steps, run)).failure;
  } finally {
    run.signal = signal;
  }
}

export async function restoreStack(
  run: RestoreRun,
  steps: readonly Step<RestoreRun>[],
  wayBack: readonly Step<RestoreRun>[] = rollbackSteps({ stack: run.stack, global: run.global, choices: run.restore.choices }),
): Promise<RestoreResult> {
  const { log, adapters, timings } = run;
  const started = adapters.clock.now();
  log.info('restore start', {
    unit: run.stack.unit,
    versions: run.restore.choices.map((choice) => ({ job: choice.job, version: choice.version.version, time: choice.version.time })),
    keep_old: run.restore.keepOld,
  });
  const { failure, startedSteps } = await runSequence(steps, run);
  let rollbackError: Error | undefined;
  if (!failure) {
    // Verified: the swap is what is wanted now; its ways back are crossed out before anything else runs.
    commitSwap(run);
  } else if (run.restore.swapped.length > 0) {
    log.warn(`${failure.message}; the restored data was in place: putting the old data back`);
    rollbackError = await rollBack(run, wayBack);
  } else if (run.undo.size > 0) {
    log.warn(`${failure.message}; restoring the stack on its old data`);
  }
  const { execute, observer } = undoExecution(run);
  const lateFailures = [...(await run.undo.settle((record) => !removesData(record), execute, observer)), ...(await run.undo.unwind(execute, observer))];
  const undoFailures: UndoFailure[] = [...(run.earlyUndoFailures ?? []), ...lateFailures];
  const restoreErrors = [...undoFailures.map((entry) => `${entry.name}: ${entry.error.message}`), ...(rollbackError ? [`rename back: ${rollbackError.message}`] : [])];
  const restored = !failure && restoreErrors.length === 0;
  const kept = [...(run.keptPaths ?? [])];
  if (restored && !run.restore.keepOld) kept.push(...(await removeOldData(run)));
  const unrecorded = [
    ...(run.journalFailures?.length ? [`the crash journal was not updated (${run.journalFailures[0]}); \`stack-backup recover\` clears it`] : []),
    ...(log.incomplete !== undefined ? [`the log is incomplete: ${log.incomplete}`] : []),
  ];
  const ok = restored && unrecorded.length === 0;
  const result: RestoreResult = {
    stack: run.stack.name,
    ok,
    error: failure?.message,
    restoreErrors,
    notRestored: undoFailures.some((entry) => (entry.record.kind === 'restore-unit' || entry.record.kind === 'unfreeze') && !(entry.error instanceof HookFailure)),
    aborted: failure instanceof AbortedError,
    restored,
    rolledBack: run.restore.rolledBack === true,
    versions: run.restore.choices.map((choice) => ({ job: choice.job, version: choice.version.version, time: choice.version.time })),
    paths: run.restore.paths.map((planned) => {
      const done = run.restore.restored.find((entry) => entry.live === planned.live);
      const swapped = run.restore.swapped.includes(planned.live);
      return {
        path: planned.live,
        job: planned.job,
        files: done?.files,
        bytes: done?.bytes,
        old: restored && planned.liveIdentity && run.restore.keepOld ? planned.old : null,
        // Kept only once every path was swapped: a swap cut short removes its copies with the staging folders.
        restoredCopy: swapped && !restored && run.restore.stagingCommitted === true ? planned.staging : null,
      };
    }),
    downtimeMs: span(timings.unitStopIssuedAt, timings.unitStartedAt),
    durationMs: adapters.clock.now() - started,
    kept,
    logFile: log.file,
    steps: startedSteps,
    unrecorded,
  };
  const fields = {
    restored,
    rolled_back: result.rolledBack,
    paths: result.paths,
    downtime_ms: result.downtimeMs,
    duration_ms: result.durationMs,
    error: result.error,
    restore_errors: restoreErrors,
    kept_paths: kept,
    snapshots_kept: undoFailures.filter((entry) => entry.error instanceof SnapshotKept).length || undefined,
  };
  if (ok) log.info('restore end', fields);
  else log.error(`restore failed: ${problems({ error: result.error, restoreErrors, unrecorded }).join('; ')}`, fields);
  return result;
}
