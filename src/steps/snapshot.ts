/**
 * Snapshot mode's own steps: check each path before anything is touched, snapshot each path
 * while the stack is down, bring the stack back before its jobs run, and remove the snapshots
 * once the jobs are done. The removal of each snapshot is registered before it is made, so a
 * failure anywhere after leaves no snapshot behind.
 */
import { findJob, type Duplicati } from '../adapters/duplicati.js';
import { btrfsSubvolumeRootInode, chooseDriver, markerPath, snapshotProblem, type TargetState } from '../adapters/snapshots.js';
import { CommandError, errorMessage } from '../errors.js';
import type { RemoveSnapshotUndo, UndoRecord } from '../journal/journal.js';
import type { UndoFailure } from '../journal/undo.js';
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
  const targets: TargetState[] = [];
  for (const [index, path] of snapshot.paths.entries()) {
    await checkStep(run, 'check snapshot path', { source: path.source, target: path.target, driver: snapshot.driver }, async () => {
      const facts = await run.adapters.snapshots.facts(path, { reflink: snapshot.driver !== 'btrfs' }, run.signal);
      const driver = chooseDriver(snapshot.driver, facts.source);
      if (driver === 'btrfs' && facts.source.exists && facts.source.inode === btrfsSubvolumeRootInode) {
        facts.nestedSubvolumes = await run.adapters.snapshots.nestedSubvolumes(path.source, run.signal);
      }
      const problem = snapshotProblem(driver, path, facts);
      if (problem !== undefined) return `snapshot.paths[${index}]: ${problem}`;
      if (facts.target.state === 'ours') {
        // Kept by a run that ended mid-job: while Duplicati still reads it, it must stay.
        const readers = await jobsDuplicatiRuns(run.adapters.duplicati, run.stack.jobs, run.signal);
        if (readers.length > 0) {
          return `snapshot.paths[${index}]: the snapshot at ${path.target}, kept by an earlier run, is still read by Duplicati job ${readers.join(', ')}; run again once it has ended`;
        }
      }
      drivers[index] = driver;
      targets[index] = facts.target;
      return undefined;
    });
  }
  run.snapshotDrivers = drivers;
  run.snapshotTargets = targets;
}

/**
 * Before the stack is stopped (removing a large copy can take minutes, and the stack must not
 * wait down for it): a snapshot that an earlier run left, proven stack-backup's by its marker,
 * is removed with the driver that made it, and a marker whose snapshot is gone goes too. What
 * turns out not to be stack-backup's is kept and fails the stack, named, before anything else.
 */
export async function removeStaleSnapshots(run: StackRun): Promise<void> {
  const snapshot = settings(run);
  for (const [index, path] of snapshot.paths.entries()) {
    const state = run.snapshotTargets?.[index];
    if (!state || (state.state === 'absent' && !state.staleMarker) || state.state === 'foreign') continue;
    const driver = state.state === 'ours' ? state.marker.driver : (run.snapshotDrivers?.[index] ?? 'reflink');
    const step = run.log.step('remove stale snapshot', { target: path.target, driver });
    try {
      if (state.state === 'ours') {
        run.log.warn(`removing a stale snapshot at ${path.target} that an earlier run left (run ${state.marker.run}, driver ${state.marker.driver}; ${markerPath(path.target)} describes it), before the stack is stopped`, {
          target: path.target,
        });
      }
      const removal = await run.adapters.snapshots.remove({ driver, target: path.target, made: state.state === 'ours' ? { identity: state.marker.identity } : undefined }, run.signal);
      if (removal.outcome === 'kept') {
        throw new CommandError(`target ${path.target} already exists and was not made by stack-backup (${removal.reason}): it was kept; remove it or choose another target`);
      }
      run.snapshotTargets![index] = { state: 'absent', staleMarker: false };
    } catch (error) {
      step.failed(error as Error);
      throw error;
    }
    step.done();
  }
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
      // The preflight looked before the stop, and stale snapshots went before it; this is the
      // last look before the change: anything at the target now is left alone.
      const state = await snapshots.targetState(path.target, run.signal);
      if (state.state !== 'absent') {
        const why = state.state === 'foreign' ? state.reason : `a snapshot of run ${state.marker.run} appeared there`;
        throw new CommandError(`target ${path.target} already exists and was not made by stack-backup (${why}): it was left alone; remove it or choose another target`);
      }
      const record: RemoveSnapshotUndo = { kind: 'remove-snapshot', driver, source: path.source, target: path.target, jobs: [...run.stack.jobs] };
      const journaled = run.undo.push(run.stack.name, record);
      await snapshots.create(driver, path, { stack: run.stack.name, run: run.runId }, (made) => journaled.update({ ...record, made }), run.signal);
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
