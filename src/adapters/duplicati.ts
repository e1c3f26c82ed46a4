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
}

export interface RunOutcome {
  /** The backup's ID from `Running backup NAME (ID: N)`; undefined when the line never came. */
  backupId: string | undefined;
  backupName: string | undefined;
  /** `run` had to be ended after run_timeout; the job may or may not be queued. */
  timedOut: boolean;
  output: string;
}

export interface Duplicati {
  status(signal?: AbortSignal): Promise<DuplicatiStatus>;
  run(job: string, signal?: AbortSignal): Promise<RunOutcome>;
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
      const result = await run(argv('run', job), { timeoutMs: settings.runTimeoutMs, signal });
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
  };
}
