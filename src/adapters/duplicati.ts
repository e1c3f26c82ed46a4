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

/**
 * A job's record (`Metadata`), as Runner.cs leaves it (UpdateMetadataBase, UpdateMetadataError):
 * `LastBackupFinished` is set only when a backup completed, `LastErrorDate`/`LastErrorMessage`
 * only when its task threw; a stopped task changes neither. Servers before 2.2 (no `--json`)
 * show only `LastBackupDate`, `LastBackupDuration` and the last error in `--detailed` lines.
 */
export type JobRecord = Readonly<Record<string, string>>;

/** How a task ended, from `GET /api/v1/task/{id}` (TaskQueueService.GetTaskInfo). */
export interface TaskState {
  status: 'Waiting' | 'Running' | 'Completed' | 'Failed' | 'Gone';
  errorMessage?: string | undefined;
}

export interface RunOutcome {
  /** The backup's ID from `Running backup NAME (ID: N)`; undefined when the line never came. */
  backupId: string | undefined;
  backupName: string | undefined;
  /** `run` had to be ended after run_timeout; the job may or may not be queued. */
  timedOut: boolean;
  output: string;
  /** The task `run` queued or joined, where the driver learns it (REST API). */
  task?: number | undefined;
  /** The job's record read just before `run`. */
  recordBefore?: JobRecord | undefined;
  /** How the task ended, once known (REST API). */
  taskEnd?: TaskState | undefined;
}

/**
 * What Duplicati says of a finished job. `Completed`: the exec driver saw the record say the
 * backup completed, which holds no result (a Warning or an Error that did not throw looks the
 * same); `Unknown` when nothing was seen.
 */
export type JobResultKind = 'Success' | 'Warning' | 'Error' | 'Fatal' | 'Completed' | 'Unknown';

/** Duplicati's progress of the running backup (`GET /api/v1/progressstate`). */
export interface JobProgress {
  phase: string;
  /** 0..1 */
  overall: number;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface JobResult {
  result: JobResultKind;
  /** Duplicati's own words for anything but a clean success. */
  message?: string | undefined;
}

export interface BackupJob {
  id: string;
  name: string;
  record?: JobRecord | undefined;
}

export interface Duplicati {
  status(signal?: AbortSignal): Promise<DuplicatiStatus>;
  run(job: string, signal?: AbortSignal): Promise<RunOutcome>;
  /** How the job that `run` started ended. */
  result(run: RunOutcome, signal?: AbortSignal): Promise<JobResult>;
  /** Every backup job Duplicati has, with its record where the driver can read it. */
  listJobs(signal?: AbortSignal): Promise<BackupJob[]>;
  /** The server's version, e.g. `2.2.0.3_stable_2025-12-04`. */
  version(signal?: AbortSignal): Promise<string>;
  /** The state of a task (REST API only). */
  task?(task: number, signal?: AbortSignal): Promise<TaskState>;
  /** Asks Duplicati to end a queued or running task: stop after the current file, or abort (REST API only). */
  stopTask?(task: number, how: 'stop' | 'abort', signal?: AbortSignal): Promise<void>;
  /** The running backup's progress; undefined when none runs (REST API only). */
  progress?(signal?: AbortSignal): Promise<JobProgress | undefined>;
  /** The folders a backup job reads, as its container sees them (REST API only). */
  jobSources?(backupId: string, signal?: AbortSignal): Promise<string[]>;
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

/**
 * Lowest versions supported. Exec: the oldest ServerUtil whose lines were read (2.1.0.5);
 * `--json` (OutputInterceptor.cs) came with 2.2, older tools are read through `--detailed`.
 * REST API: 2.2.0.0, since 2.1.0.x names the task stop calls differently
 * (`stopaftercurrentfile`/`stopnow`, ServerUtil Connection.cs) from Tasks.cs's `stop`/`abort`.
 */
export const lowestExecVersion = '2.1.0.5';
export const lowestApiVersion = '2.2.0.0';
const jsonSince = '2.2.0.0';

/** "2.2.0.3_stable_2025-12-04" or "2.2.0.3 (...)" -> [2, 2, 0, 3]; undefined when no version is in it. */
export function parseVersion(text: string): number[] | undefined {
  const match = /(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return match ? [match[1], match[2], match[3], match[4] ?? '0'].map(Number) : undefined;
}

export function versionAtLeast(version: string, lowest: string): boolean {
  const have = parseVersion(version);
  const need = parseVersion(lowest)!;
  if (!have) return false;
  for (let index = 0; index < need.length; index += 1) {
    if (have[index]! !== need[index]!) return have[index]! > need[index]!;
  }
  return true;
}

/** Refuses a server older than the driver supports, saying which version is needed. */
export function checkVersion(version: string, driver: 'exec' | 'api'): string | undefined {
  const lowest = driver === 'exec' ? lowestExecVersion : lowestApiVersion;
  if (versionAtLeast(version, lowest)) return undefined;
  return `Duplicati ${version || '(no version)'} is older than ${lowest}, the lowest version the ${driver} driver supports; update Duplicati${driver === 'api' ? ' or use duplicati.driver: exec' : ''}`;
}

const finishedKeys = ['LastBackupFinished', 'LastBackupStarted', 'LastBackupDuration', 'LastBackupDate'] as const;
const errorKeys = ['LastErrorDate', 'LastErrorMessage'] as const;

/**
 * What changed in a job's record between two reads (Runner.cs): `error` when the task threw
 * (LastErrorDate/LastErrorMessage; it wins when both changed), `finished` when a backup
 * completed (LastBackup*), `none` when neither (not run yet, or stopped).
 */
export function recordChange(before: JobRecord | undefined, after: JobRecord | undefined): 'error' | 'finished' | 'none' {
  const changed = (keys: readonly string[]) => keys.some((key) => (after?.[key] ?? '') !== '' && (after?.[key] ?? '') !== (before?.[key] ?? ''));
  if (changed(errorKeys)) return 'error';
  if (changed(finishedKeys)) return 'finished';
  return 'none';
}

/** The verdict of the exec driver, from the job's record before and after its run. */
export function resultFromRecords(before: JobRecord | undefined, after: JobRecord | undefined): JobResult {
  switch (recordChange(before, after)) {
    case 'error':
      return { result: 'Fatal', message: after?.LastErrorMessage || 'Duplicati recorded an error (LastErrorDate) without a message' };
    case 'finished':
      return { result: 'Completed', message: 'the backup completed (LastBackupFinished); the exec driver cannot see whether with warnings or errors' };
    default:
      return { result: 'Fatal', message: 'Duplicati recorded neither a completed backup nor an error for this run (was it stopped?)' };
  }
}

/** `--json list-backups` (ListBackups.cs, OutputInterceptor.cs): Backups [{Id, Name, Metadata}]. */
export function parseJobListJson(output: string): BackupJob[] | undefined {
  const start = output.indexOf('{');
  const end = output.lastIndexOf('}');
  if (start < 0 || end < start) return undefined;
  let parsed: { Backups?: unknown };
  try {
    parsed = JSON.parse(output.slice(start, end + 1)) as { Backups?: unknown };
  } catch {
    return undefined;
  }
  // An empty list prints "No backups found" and no Backups member.
  if (!Array.isArray(parsed.Backups)) return typeof parsed === 'object' && parsed !== null && 'Messages' in parsed ? [] : undefined;
  return parsed.Backups.map((entry: { Id?: unknown; Name?: unknown; Metadata?: unknown }) => ({
    id: String(entry.Id ?? ''),
    name: String(entry.Name ?? ''),
    record: Object.fromEntries(
      Object.entries(entry.Metadata && typeof entry.Metadata === 'object' ? entry.Metadata : {}).map(([key, value]) => [key, String(value)]),
    ),
  }));
}

/**
 * `list-backups --detailed` for servers before 2.2 (ListBackups.cs): `  Last backup: DATE`,
 * `  Last duration: SPAN`, `  Last error: DATE - MESSAGE` under each `ID: NAME` line.
 */
export function parseJobListDetailed(output: string): BackupJob[] {
  const jobs: Array<{ id: string; name: string; record: Record<string, string> }> = [];
  for (const raw of output.split('\n')) {
    const line = raw.trimEnd();
    const job = /^(\d+): (.+)$/.exec(line);
    if (job) {
      jobs.push({ id: job[1]!, name: job[2]!, record: {} });
      continue;
    }
    const current = jobs[jobs.length - 1];
    if (!current) continue;
    const detail = /^ {2}(Last backup|Last duration|Last error): (.*)$/.exec(line);
    if (!detail) continue;
    if (detail[1] === 'Last backup') current.record.LastBackupDate = detail[2]!;
    else if (detail[1] === 'Last duration') current.record.LastBackupDuration = detail[2]!;
    else {
      const error = /^(\S+ \S+) - (.*)$/.exec(detail[2]!);
      current.record.LastErrorDate = error ? error[1]! : detail[2]!;
      current.record.LastErrorMessage = error ? error[2]! : '';
    }
  }
  return jobs;
}

/** Finds a job as `run` does (RunBackup.cs): exact ID, or name case-insensitively. */
export function findJob(jobs: readonly BackupJob[], job: string): BackupJob | undefined {
  return jobs.find((entry) => entry.name.toLowerCase() === job.toLowerCase() || entry.id === job);
}

const statusTimeoutMs = 30_000;
/** The outer bound on `podman exec ... run` lets the inner `timeout` fire first. */
const outerRunMarginMs = 3_000;

/** The command line of one duplicati-server-util call; the dry run shows the same. */
export function serverUtilArgv(settings: Pick<DuplicatiSettings, 'container' | 'serverUtil'>, ...args: string[]): string[] {
  return ['podman', 'exec', settings.container, settings.serverUtil, ...args];
}

/** The command line of `run`, bounded inside the container too (see run below); the dry run shows the same. */
export function serverUtilRunArgv(settings: Pick<DuplicatiSettings, 'container' | 'serverUtil' | 'runTimeoutMs'>, job: string): string[] {
  const seconds = String(Math.max(1, Math.ceil(settings.runTimeoutMs / 1000)));
  return ['podman', 'exec', settings.container, 'timeout', '-s', 'KILL', seconds, settings.serverUtil, 'run', '--', job];
}

export function createExecDuplicati(run: CommandRunner, settings: DuplicatiSettings): Duplicati {
  const argv = (...args: string[]) => serverUtilArgv(settings, ...args);
  /** Whether the tool takes `--json`; learned from the first list (servers before 2.2 do not). */
  let json: boolean | undefined;

  async function read(args: string[], signal?: AbortSignal) {
    const result = await run(argv(...args), { timeoutMs: statusTimeoutMs, signal });
    if (result.timedOut) throw timeoutError(result, statusTimeoutMs);
    return result;
  }

  async function listJobs(signal?: AbortSignal): Promise<BackupJob[]> {
    if (json !== false) {
      const result = await read(['--json', 'list-backups'], signal);
      const jobs = result.exitCode === 0 ? parseJobListJson(result.stdout) : undefined;
      if (jobs) {
        json = true;
        return jobs;
      }
      if (json === true || !/Unrecognized|--json/i.test(result.output)) {
        throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      }
      json = false;
    }
    const result = await read(['list-backups', '--detailed'], signal);
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
    return parseJobListDetailed(result.stdout);
  }

  return {
    async status(signal) {
      const result = await read(['status'], signal);
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      return parseStatus(result.stdout);
    },
    async run(job, signal) {
      // Killing the `podman exec` client leaves the process in the container running: bound it
      // there too, so a `run` ended after run_timeout cannot queue the job later, against the
      // restarted stack. RunBackup.cs prints its line before it sends the request. The job's
      // name goes after "--", so a name beginning with "-" is the backup argument, not an
      // option: ServerUtil parses with System.CommandLine (Duplicati/CommandLine/ServerUtil/
      // Program.cs, CommandLineBuilder without EnableLegacyDoubleDashBehavior), where tokens
      // after "--" are arguments; `run` takes one argument, "backup" (Commands/RunBackup.cs).
      const command = serverUtilRunArgv(settings, job);
      const result = await run(command, { timeoutMs: settings.runTimeoutMs + outerRunMarginMs, signal });
      const parsed = parseRunLine(result.stdout);
      // timeout(1) exits 124, or 137 when it had to send KILL
      const timedOut = result.timedOut || result.exitCode === 124 || result.exitCode === 137;
      if (!timedOut && result.exitCode !== 0) {
        if (/No backup found/i.test(result.output)) {
          throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`, result.output);
        }
        if (/timeout.*(not found|no such file)|executable file .timeout./i.test(result.output)) {
          throw new CommandError(`the Duplicati container has no "timeout" command, which bounds "run" inside it (run_timeout)`, result.output);
        }
        throw new CommandError(describeFailure(result, settings.runTimeoutMs), result.output);
      }
      return {
        backupId: parsed?.backupId,
        backupName: parsed?.backupName,
        timedOut,
        output: result.output,
      };
    },
    async result(outcome, signal) {
      // The record holds no ParsedResult: LastErrorDate says the task threw, LastBackupFinished
      // alone that a backup completed, neither that it was stopped (Runner.cs).
      const after = outcome.backupId === undefined ? undefined : (await listJobs(signal)).find((job) => job.id === outcome.backupId);
      return resultFromRecords(outcome.recordBefore, after?.record);
    },
    listJobs,
    async version(signal) {
      // System.CommandLine's --version (Program.cs UseDefaults): the informational version.
      const result = await read(['--version'], signal);
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      const line = result.stdout.split('\n').find((text) => parseVersion(text) !== undefined);
      if (!line) throw new CommandError(`${settings.serverUtil} --version printed no version`, result.output);
      if (json === undefined) json = versionAtLeast(line, jsonSince);
      return line.trim();
    },
  };
}
