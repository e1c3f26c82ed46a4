/**
 * Snapshot mode's own steps: check each path before anything is touched, snapshot each path
 * while the stack is down, bring the stack back before its jobs run, and remove the snapshots
 * once the jobs are done. The removal of each snapshot is registered before it is made, so a
 * failure anywhere after leaves no snapshot behind.
 */
import { findJob, type Duplicati } from '../adapters/duplicati.js';
import { btrfsSubvolumeRootInode, chooseDriver, snapshotProblem } from '../adapters/snapshots.js';
import { CommandError, errorMessage } from '../errors.js';
import type { RemoveSnapshotUndo, UndoRecord } from '../journal.js';
import type { UndoFailure } from '../undo.js';
import type { StackRun } from './context.js';
import { checkStep } from './preflight.js';
import { undoExecution } from './undo-actions.js';

/** Undos done mid-run (the restore, the snapshots' removal) failed: they are reported as restore errors. */
export class EarlyUndoError extends CommandError {
  override name = 'EarlyUndoError';
}

function settings(run: StackRun) {
  const snapshot = run.stack.snapshot;
  if (!snapshot) throw new Error(`stack ${run.stack.name} has no snapshot settings`);
  return snapshot;
}

/** Which of these jobs Duplicati queues or runs now. */
export async function jobsDuplicatiRuns(duplicati: Duplicati, jobs: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const known = await duplicati.listJobs(signal);
  const status = await duplicati.status(signal);
  const tasks = [...(status.active ? [status.active] : []), ...status.queue];
  return jobs.filter((job) => {
    const id = findJob(known, job)?.id;
    return id !== undefined && tasks.some((task) => task.backupId === id);
  });
}

/** Part of the preflight: every path can be snapshotted with its driver; nothing is touched. */
export async function checkSnapshotPaths(run: StackRun): Promise<void> {
  const snapshot = settings(run);
  const drivers: NonNullable<StackRun['snapshotDrivers']> = [];
  for (const [index, path] of snapshot.paths.entries()) {
    await checkStep(run, 'check snapshot path', { source: path.source, target: path.target, driver: snapshot.driver }, async () => {
      const facts = await run.adapters.snapshots.facts(path, { reflink: snapshot.driver !== 'btrfs' }, run.signal);
      const driver = chooseDriver(snapshot.driver, facts.source);
      if (driver === 'btrfs' && facts.source.exists && facts.source.inode === btrfsSubvolumeRootInode) {
        facts.nestedSubvolumes = await run.adapters.snapshots.nestedSubvolumes(path.source, run.signal);
      }
      const problem = snapshotProblem(driver, path, facts);
      if (problem !== undefined) return `snapshot.paths[${index}]: ${problem}`;
      if (facts.target === 'ours') {
        // Kept by a run that ended mid-job: while Duplicati still reads it, it must stay.
        const readers = await jobsDuplicatiRuns(run.adapters.duplicati, run.stack.jobs, run.signal);
        if (readers.length > 0) {
          return `snapshot.paths[${index}]: the snapshot at ${path.target}, kept by an earlier run, is still read by Duplicati job ${readers.join(', ')}; run again once it has ended`;
        }
      }
      drivers[index] = driver;
      return undefined;
    });
  }
  run.snapshotDrivers = drivers;
}

export async function takeSnapshots(run: StackRun): Promise<void> {
  const snapshot = settings(run);
  const { snapshots, clock } = run.adapters;
  run.timings.snapshotStartedAt = clock.now();
  for (const [index, path] of snapshot.paths.entries()) {
    const driver = run.snapshotDrivers?.[index];
    if (driver === undefined) throw new Error(`snapshot.paths[${index}] was not checked before the stop`);
    const step = run.log.step('snapshot', { source: path.source, target: path.target, driver });
    try {
      // The preflight looked before the stop; this is the last look before the change.
      const state = await snapshots.targetState(path.target, run.signal);
      if (state === 'foreign') {
        throw new CommandError(`target ${path.target} already exists and was not made by stack-backup: remove it or choose another target`);
      }
      const record: RemoveSnapshotUndo = { kind: 'remove-snapshot', driver, source: path.source, target: path.target, jobs: [...run.stack.jobs] };
      run.undo.push(run.stack.name, record);
      if (state === 'ours') {
        // A run that was killed left it, and its journal entry was lost: it is stale.
        run.log.warn(`removing a stale snapshot at ${path.target} that an earlier run left`, { target: path.target });
        await snapshots.remove(driver, path.target, run.signal);
      }
      await snapshots.create(driver, path, run.stack.name, run.signal);
      step.done();
    } catch (error) {
      step.failed(error as Error);
      throw error;
    }
  }
  run.timings.snapshotEndedAt = clock.now();
}

function settle(run: StackRun, which: (record: UndoRecord) => boolean): Promise<UndoFailure[]> {
  const { execute, observer } = undoExecution(run);
  return run.undo.settle(which, execute, observer);
}

const isSnapshotRemoval = (record: UndoRecord) => record.kind === 'remove-snapshot';

/**
 * Brings the stack back as stop mode does at its end (pre_start hooks, start per
 * restore_policy, unfreeze, post_start hooks), while the snapshots stay for the jobs.
 */
export async function restoreBeforeJobs(run: StackRun): Promise<void> {
  const failures = await settle(run, (record) => !isSnapshotRemoval(record));
  if (failures.length > 0) {
    (run.earlyUndoFailures ??= []).push(...failures);
    throw new EarlyUndoError(`the stack was not fully restored, so its jobs were not run: ${failures.map((failure) => `${failure.name}: ${failure.error.message}`).join('; ')}`);
  }
}

/** After the jobs: each snapshot goes, last made first. */
export async function removeSnapshots(run: StackRun): Promise<void> {
  const failures = await settle(run, isSnapshotRemoval);
  if (failures.length > 0) {
    (run.earlyUndoFailures ??= []).push(...failures);
    throw new EarlyUndoError(`snapshots not removed: ${failures.map((failure) => errorMessage(failure.error)).join('; ')}`);
  }
}
