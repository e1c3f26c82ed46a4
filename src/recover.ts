/**
 * Replays the crash journal of a run that died: starts the units that were active, unfreezes
 * sockets, runs the hooks that undo pre_stop, last change first. Only ever called while holding
 * the root's lock, so the journal of a run that is still alive is never replayed.
 */
import type { Clock } from './adapters/clock.js';
import type { HookRunner } from './adapters/hooks.js';
import type { Duplicati } from './adapters/duplicati.js';
import type { MadePaths } from './adapters/made-paths.js';
import type { Snapshots } from './adapters/snapshots.js';
import type { Systemd } from './adapters/systemd.js';
import { errorMessage } from './errors.js';
import type { Journal, JournalEntry, RemoveSnapshotUndo } from './journal/journal.js';
import { createStackLog } from './report/logging.js';
import type { Progress } from './report/report.js';
import { jobsDuplicatiRuns } from './steps/snapshot.js';
import { describeSteps, runSequence, type Step } from './steps/sequence.js';
import { performUndo } from './steps/undo-actions.js';
import { describeUndo, removesData, undoName } from './journal/undo-records.js';
import { crossOut, runBounded } from './journal/undo.js';

export interface RecoveryDependencies {
  systemd: Systemd;
  runHook: HookRunner;
  clock: Clock;
  progress: Progress;
  /** SIGINT/SIGTERM: ends the undo under way (its hook's process group is killed) and leaves the rest in the journal. */
  signal?: AbortSignal;
  snapshots?: Snapshots;
  madePaths?: MadePaths;
  /** Asked whether a kept snapshot is still read; made only when a snapshot is to be removed. */
  duplicati?: () => Duplicati;
  /** Takes a unit's lock, so that recovery never starts a unit another root's run has down for its backup. */
  lockUnit?: (unit: string, onLost: (error: Error) => void) => Promise<() => Promise<void>>;
}

/**
 * A snapshot is kept while Duplicati still queues or runs one of the stack's jobs (a run
 * killed mid-job left that task reading it), or when Duplicati cannot tell.
 */
function snapshotReaderOf(dependencies: RecoveryDependencies) {
  return async (record: { jobs: readonly string[] }, signal: AbortSignal): Promise<string | undefined> => {
    if (!dependencies.duplicati) return `cannot ask Duplicati whether it still runs job ${record.jobs.join(', ')}`;
    try {
      const busy = await jobsDuplicatiRuns(dependencies.duplicati(), record.jobs, signal);
      return busy.length > 0 ? `Duplicati still runs or queues job ${busy.join(', ')}` : undefined;
    } catch (error) {
      return `cannot ask Duplicati whether it still runs job ${record.jobs.join(', ')} (${errorMessage(error)})`;
    }
  };
}

export interface RecoveryReport {
  /** One line per undo: "stack: what". */
  restored: string[];
  failed: string[];
}

/** What a recovery walks: the journal it crosses entries out of, and what it reports. */
interface RecoveryRun {
  root: string;
  journal: Journal;
  runId: string;
  dependencies: RecoveryDependencies;
  report: RecoveryReport;
  /** Each stack's unit, from the journal's own records of it (the stack file may be gone or changed). */
  units: Map<string, string>;
  /** The unit locks taken, by stack; released once the walk ends. */
  held: Map<string, () => Promise<void>>;
  /** Stacks whose unit another root's run holds: their entries wait for a later recover. */
  waiting: Map<string, string>;
}

/**
 * One step per pending undo, in the order it runs (recoveryOrder), with its exact commands. A
 * failure is written down and the walk goes on: what was not done stays in the journal.
 */
export function recoverySteps(entries: readonly JournalEntry[]): Step<RecoveryRun>[] {
  return recoveryOrder(entries).map((entry) => ({
    name: `${entry.stack}: ${undoName(entry.undo)} (left by run ${entry.run}, pid ${entry.pid}, at ${entry.recordedAt})`,
    actions: describeUndo(entry.undo),
    run: async (run) => {
      // SIGINT/SIGTERM: the rest stays in the journal for the next `recover` or run.
      if (run.dependencies.signal?.aborted) return;
      const unit = run.units.get(entry.stack);
      if (unit !== undefined && run.dependencies.lockUnit && !run.held.has(entry.stack) && !run.waiting.has(entry.stack)) {
        try {
          run.held.set(entry.stack, await run.dependencies.lockUnit(unit, () => {}));
        } catch (error) {
          run.waiting.set(entry.stack, errorMessage(error));
        }
      }
      const wait = run.waiting.get(entry.stack);
      if (wait !== undefined) {
        run.report.failed.push(`${entry.stack}: ${undoName(entry.undo)}: not done now: ${wait}; it stays in the journal for the next recover`);
        return;
      }
      await recoverEntry(run.root, run.journal, run.runId, entry, run.dependencies, run.report);
    },
  }));
}

/** What `recover` would do, touching nothing: the list `recover` walks, printed. */
export function recoveryPlan(entries: readonly JournalEntry[], runInProgress: boolean): string[] {
  if (entries.length === 0) return ['nothing to recover: no run left a stack stopped or frozen'];
  return [
    ...(runInProgress ? ['a run is in progress and holds the lock: `recover` would refuse, since the journal of a live run is never replayed'] : []),
    ...describeSteps(recoverySteps(entries)),
    `Dry run: nothing was touched (${entries.length} pending undo${entries.length === 1 ? '' : 's'}).`,
  ];
}

/**
 * Last change first, but every stack's units and hooks before any snapshot's removal: a large
 * copy can take minutes to remove, and no stack must wait down for it.
 */
export function recoveryOrder(entries: readonly JournalEntry[]): JournalEntry[] {
  const reversed = [...entries].reverse();
  return [...reversed.filter((entry) => !removesData(entry.undo)), ...reversed.filter((entry) => removesData(entry.undo))];
}

/** Each stack's unit, from the journal's own records of it (the stack file may be gone or changed). */
function unitsOf(entries: readonly JournalEntry[]): Map<string, string> {
  const units = new Map<string, string>();
  for (const entry of entries) if (entry.undo.kind === 'restore-unit') units.set(entry.stack, entry.undo.unit);
  return units;
}

export async function recoverPending(root: string, journal: Journal, runId: string, dependencies: RecoveryDependencies): Promise<RecoveryReport> {
  const entries = journal.pending();
  const run: RecoveryRun = { root, journal, runId, dependencies, report: { restored: [], failed: [] }, units: unitsOf(entries), held: new Map(), waiting: new Map() };
  try {
    await runSequence(recoverySteps(entries), run);
  } finally {
    for (const release of run.held.values()) await release().catch(() => {});
  }
  return run.report;
}

async function recoverEntry(root: string, journal: Journal, runId: string, entry: JournalEntry, dependencies: RecoveryDependencies, report: RecoveryReport): Promise<void> {
  const name = undoName(entry.undo);
  const log = createStackLog(root, entry.stack, runId, dependencies.clock, dependencies.progress);
  try {
    log.warn(`recovering after run ${entry.run} (pid ${entry.pid}) ended before restoring the stack: ${name}`, {
      recovery: true,
      undo: entry.undo,
    });
    const context = {
      systemd: dependencies.systemd,
      runHook: dependencies.runHook,
      clock: dependencies.clock,
      log,
      snapshots: dependencies.snapshots,
      madePaths: dependencies.madePaths,
      duplicati: dependencies.duplicati,
      snapshotReader: snapshotReaderOf(dependencies),
      kept: (path: string, reason: string) => report.restored.push(`${entry.stack}: kept ${path}: ${reason}; it is not what stack-backup made, so it was not removed`),
    };
    const outer = dependencies.signal;
    const error = await runBounded(entry.undo, (record, signal) =>
      performUndo(record, context, outer ? AbortSignal.any([signal, outer]) : signal),
    );
    if (error) {
      log.error(`recovery of "${name}" failed: ${error.message}`, { recovery: true });
      report.failed.push(`${entry.stack}: ${name}: ${error.message}`);
    } else {
      crossOut(journal, entry.id, { journalFailed: (failure) => log.warn(`cannot update the crash journal: ${failure.message}`) });
      log.info(`recovered: ${name}`, { recovery: true });
      report.restored.push(`${entry.stack}: ${name}`);
    }
  } finally {
    log.close();
  }
}
