/** What every step of one stack's run is given: its config, the outside world, its log and undo stack. */
import type { Clock } from '../adapters/clock.js';
import type { Duplicati, JobResult } from '../adapters/duplicati.js';
import type { HookRunner } from '../adapters/hooks.js';
import type { ContainerEngine } from '../adapters/podman.js';
import type { Systemd } from '../adapters/systemd.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import type { StackLog } from '../logging.js';
import type { UndoStack } from '../undo.js';

/** The adapters to the outside world; tests pass in-memory fakes. */
export interface Adapters {
  systemd: Systemd;
  engine: ContainerEngine;
  duplicati: Duplicati;
  runHook: HookRunner;
  clock: Clock;
  /** Reads a folder (which triggers an automount) and throws when it cannot be read in time. */
  checkFolder(folder: string, timeoutMs: number): Promise<void>;
}

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
}

/** Duplicati's verdict on each job of the stack, in order. */
export interface JobVerdict extends JobResult {
  job: string;
}

export interface StackRun {
  stack: StackConfig;
  global: GlobalConfig;
  adapters: Adapters;
  log: StackLog;
  undo: UndoStack;
  /** Fires when the run is asked to stop; forward steps end, undos do not listen to it. */
  signal: AbortSignal;
  timings: StackTimings;
  jobResults: JobVerdict[];
}
