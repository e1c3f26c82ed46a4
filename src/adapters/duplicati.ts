/**
 * Duplicati through `duplicati-server-util` inside its container (`podman exec`, no TTY, no
 * shell). Parses the tool's lines as documented in shared/notes/duplicati.md and skips every
 * line it does not know (`Connecting to ...`, `No database found ...`).
 */
import { CommandError } from '../errors.js';
import type { DuplicatiSettings } from '../config/types.js';
import { describeFailure, timeoutError, type CommandRunner } from './process.js';

export interface TaskReference {
  task: number;
  backupId: string;
}

export interface DuplicatiStatus {
  paused: boolean;
  active: TaskReference | undefined;
  queue: TaskReference[];
  /** The server's event counter, where the driver sees one (REST API): lets a waiter long-poll. */
  eventId?: number;
}

export interface RunOutcome {
  /** The backup's ID from `Running backup NAME (ID: N)`; undefined when the line never came. */
  backupId: string | undefined;
  backupName: string | undefined;
  /** `run` had to be ended after run_timeout; the job may or may not be queued. */
  timedOut: boolean;
  output: string;
  /** The backup's LastBackupFinished before this run, where the driver can read it. */
  lastFinishedBefore?: string | undefined;
}

/** What Duplicati says of a finished job; `Unknown` when the driver cannot see it. */
export type JobResultKind = 'Success' | 'Warning' | 'Error' | 'Fatal' | 'Unknown';

export interface JobResult {
  result: JobResultKind;
  /** Duplicati's own words for anything but a clean success. */
  message?: string | undefined;
}

export interface BackupJob {
  id: string;
  name: string;
}

export interface Duplicati {
  status(signal?: AbortSignal): Promise<DuplicatiStatus>;
  run(job: string, signal?: AbortSignal): Promise<RunOutcome>;
  /** How the job that `run` started ended. */
  result(run: RunOutcome, signal?: AbortSignal): Promise<JobResult>;
  /** Every backup job Duplicati has, for `doctor`. */
  listJobs(signal?: AbortSignal): Promise<BackupJob[]>;
  /**
   * Resolves once the server state may have changed since `since`, or after maxWaitMs: the
   * REST API long-polls. Drivers that cannot be told leave it out, and the waiter polls.
   */
  waitForChange?(since: DuplicatiStatus, maxWaitMs: number, signal?: AbortSignal): Promise<void>;
}

export class UnknownJobError extends CommandError {
  override name = 'UnknownJobError';
}

const taskLine = /\[Task (\d+)\]: BackupId = (\S+)/;

function parseTask(line: string): TaskReference | undefined {
  const match = taskLine.exec(line);
  return match ? { task: Number(match[1]), backupId: match[2]! } : undefined;
}

/** Parses `status` output; throws when the state line is missing (not Duplicati answering). */
export function parseStatus(output: string): DuplicatiStatus {
  let state: string | undefined;
  let active: TaskReference | undefined;
  let sawActiveLine = false;
  const queue: TaskReference[] = [];
  let inQueue = false;
  for (const line of output.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('Server state:')) {
      state = trimmed.slice('Server state:'.length).trim();
      inQueue = false;
    } else if (trimmed.startsWith('Active task:')) {
      sawActiveLine = true;
      active = parseTask(trimmed);
      inQueue = false;
    } else if (trimmed === 'Scheduled tasks:') {
      inQueue = true;
    } else if (trimmed.startsWith('Scheduler tasks:')) {
      inQueue = false;
    } else if (inQueue) {
      const task = parseTask(trimmed);
      if (task) queue.push(task);
      else if (trimmed !== '') inQueue = false;
    }
  }
  if (state === undefined || !sawActiveLine) {
    throw new CommandError('Duplicati status output has no "Server state:" or "Active task:" line', output);
  }
  return { paused: state.toLowerCase() === 'paused', active, queue };
}

const runningLine = /Running backup (.*) \(ID: ([^)]+)\)/;

export function parseRunLine(output: string): { backupName: string; backupId: string } | undefined {
  const match = runningLine.exec(output);
  return match ? { backupName: match[1]!, backupId: match[2]!.trim() } : undefined;
}

/** `list-backups` prints "ID: NAME" and an empty line per job. */
export function parseJobList(output: string): BackupJob[] {
  const jobs: BackupJob[] = [];
  for (const line of output.split('\n')) {
    // Descriptions follow indented: only an unindented line names a job.
    const match = /^(\d+): (.+)$/.exec(line.trimEnd());
    if (match) jobs.push({ id: match[1]!, name: match[2]! });
  }
  return jobs;
}

const statusTimeoutMs = 30_000;

export function createExecDuplicati(run: CommandRunner, settings: DuplicatiSettings): Duplicati {
  const argv = (...args: string[]) => ['podman', 'exec', settings.container, settings.serverUtil, ...args];
  return {
    async status(signal) {
      const result = await run(argv('status'), { timeoutMs: statusTimeoutMs, signal });
      if (result.timedOut) throw timeoutError(result, statusTimeoutMs);
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      return parseStatus(result.stdout);
    },
    async run(job, signal) {
      // "--" ends the options, so a job name beginning with "-" is the backup argument, not an
      // option: ServerUtil parses with System.CommandLine (Duplicati/CommandLine/ServerUtil/
      // Program.cs, CommandLineBuilder without EnableLegacyDoubleDashBehavior), where tokens after
      // "--" are arguments; `run` takes one argument, "backup" (Commands/RunBackup.cs).
      const result = await run(argv('run', '--', job), { timeoutMs: settings.runTimeoutMs, signal });
      const parsed = parseRunLine(result.stdout);
      if (!result.timedOut && result.exitCode !== 0) {
        if (/No backup found/i.test(result.output)) {
          throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`, result.output);
        }
        throw new CommandError(describeFailure(result, settings.runTimeoutMs), result.output);
      }
      return {
        backupId: parsed?.backupId,
        backupName: parsed?.backupName,
        timedOut: result.timedOut,
        output: result.output,
      };
    },
    async result() {
      // duplicati-server-util shows no backup's result (`run --wait` reports it only from
      // 2.2.0.3, and its exit code only from 2.3.1.0): never claim a success not seen.
      return { result: 'Unknown', message: 'the exec driver cannot see Duplicati\'s result; use duplicati.driver: api' };
    },
    async listJobs(signal) {
      const result = await run(argv('list-backups'), { timeoutMs: statusTimeoutMs, signal });
      if (result.timedOut) throw timeoutError(result, statusTimeoutMs);
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      return parseJobList(result.stdout);
    },
  };
}
