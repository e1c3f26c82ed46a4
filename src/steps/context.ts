/** What every step of one stack's run is given: its config, the outside world, its log and undo stack. */
import type { Adapters } from '../adapters/adapters.js';
import type { DuplicatiStatus, JobResult, PreparedRun } from '../adapters/duplicati.js';
import type { TargetState } from '../adapters/snapshots.js';
import type { GraphUnit } from '../adapters/unit-graph.js';
import type { ContainerSelection, GlobalConfig, SnapshotDriverName, StackConfig } from '../config/types.js';
import type { StackLog } from '../report/logging.js';
import type { Journal } from '../journal/journal.js';
import { UndoStack, type UndoFailure } from '../journal/undo.js';

/** Measured while the stack runs, for the summary and the log. */
export interface StackTimings {
  unitWasActive?: boolean;
  unitStopIssuedAt?: number;
  unitStoppedAt?: number;
  containersGoneAt?: number;
  unitStartIssuedAt?: number;
  unitStartedAt?: number;
  backupStartedAt?: number;
  backupEndedAt?: number;
  /** Time the stack spent down waiting behind another job's Duplicati task. */
  queueMs?: number;
  /** Snapshot mode: from the first snapshot's start to the last one's end. */
  snapshotStartedAt?: number;
  snapshotEndedAt?: number;
  /**
   * The downtime path, instant by instant (stop mode; epoch ms), for the timeline: when a look
   * confirmed Duplicati idle after the stop, the first job's run was asked and said queued,
   * first seen running, when Duplicati says the first job began and the last ended (TaskStarted
   * and TaskFinished, or the record's whole seconds), and when the last one's end was seen.
   */
  duplicatiIdleAt?: number | undefined;
  runRequestedAt?: number | undefined;
  jobQueuedAt?: number | undefined;
  jobSeenAt?: number | undefined;
  jobStartedAt?: number | undefined;
  jobEndedAt?: number | undefined;
  jobEndSeenAt?: number | undefined;
  /** jobStartedAt/jobEndedAt come from the exec driver's record: whole seconds. */
  jobRecordedInSeconds?: boolean | undefined;
}

/** What the looks at Duplicati made while the stack stopped say once it is down (stop-watch.ts). */
export type WatchVerdict =
  | { kind: 'idle'; confirmedAt: number; prepared: PreparedRun | undefined }
  | { kind: 'busy'; status: DuplicatiStatus }
  | { kind: 'failed'; error: Error };

export interface StopWatch {
  /**
   * Once the stack is down: the verdict, as soon as there is one (a look begun after the stop
   * showed Duplicati idle and the record was read, or a look showed it busy, or looks failed).
   */
  settle(): Promise<WatchVerdict>;
  /** Ends the looks; one under way finishes on its own. */
  stop(): void;
}

/** Duplicati's verdict on each job of the stack, in order. */
export interface JobVerdict extends JobResult {
  job: string;
}

export interface StackRun {
  /** The run's ID: in the crash journal, the log, and what this run makes on disk. */
  runId: string;
  stack: StackConfig;
  global: GlobalConfig;
  adapters: Adapters;
  log: StackLog;
  undo: UndoStack;
  /** Fires when the run is asked to stop; forward steps end, undos do not listen to it. */
  signal: AbortSignal;
  timings: StackTimings;
  jobResults: JobVerdict[];
  /** The stack's unit graph and how its containers are found, read once (stack-containers.ts). */
  containers?: { graph: GraphUnit[]; selection: ContainerSelection };
  /** Snapshot mode: each path's driver, decided at the preflight (auto: by the source). */
  snapshotDrivers?: SnapshotDriverName[];
  /** Snapshot mode: what each target held at the preflight. */
  snapshotTargets?: TargetState[];
  /** Paths stack-backup meant to remove but kept, since they were not what it made: "PATH (why)". */
  keptPaths?: string[];
  /**
   * Jobs that Duplicati may still run after the run gave up on them (exec driver, or a task
   * that would not stop): their snapshots are kept for them to read to the end.
   */
  jobsMayStillRun?: Set<string>;
  /** Undos done before the end of the run (snapshot mode's restore) that failed. */
  earlyUndoFailures?: UndoFailure[];
  /** Crash-journal writes that failed after an undo was done (it may be replayed once more). */
  journalFailures?: string[];
  /** Stop mode: the looks at Duplicati made while the stack stops (stop-watch.ts). */
  stopWatch?: StopWatch | undefined;
  /** The first job's ID and record, read while the stack stopped. */
  preparedRun?: PreparedRun | undefined;
  /**
   * What is read once the stack runs again (the last job's verdict, where reading it while the
   * stack is down would cost downtime): run by the orchestrator after the restore; a failure
   * fails the stack.
   */
  afterStart?: Array<() => Promise<void>>;
}

/**
 * A stack's run as it begins, a backup's or a restore's: nothing undone, timed or judged yet; its
 * undos written to the journal (none: a dry run's look, which changes nothing).
 */
export function beginStackRun(start: Pick<StackRun, 'runId' | 'stack' | 'global' | 'adapters' | 'log' | 'signal'> & { journal: Journal | undefined }): StackRun {
  const { journal, ...run } = start;
  return { ...run, undo: new UndoStack(journal, undefined, run.adapters.clock), timings: {}, jobResults: [] };
}
