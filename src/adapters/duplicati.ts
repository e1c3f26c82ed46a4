/**
 * Duplicati through `duplicati-server-util` inside its container (`podman exec`, no TTY).
 * Parses the tool's lines as documented in shared/notes/duplicati.md and skips every line it
 * does not know (`Connecting to ...`, `No database found ...`). Each `podman exec` costs 0.1 to
 * 1 s, so the calls go through exec sessions opened before the stack is stopped
 * (duplicati-session.ts): one that takes requests (status, polls, the job list) and one per
 * job that waits to run it with `run --wait`, whose last line gives the job's result. Where a
 * session dies, its call goes through a `podman exec` of its own, as without sessions: one
 * exec reads the job's record and runs it, one per poll reads the status and the records.
 */
import { CommandError, TimeoutError } from '../errors.js';
import type { DuplicatiSettings } from '../config/types.js';
import { shellLine } from '../shell-quote.js';
import { systemClock, type Clock } from './clock.js';
import type { BackupVersion, RestoreOutcome, RestoreRequest, VersionEntry } from './backup-versions.js';
import { createExecRestore } from './duplicati-cli.js';
import { ArmedRun, armedRunArgv, RequestSession, runWaitLines, sessionArgv, type ListFormat } from './duplicati-session.js';

export type { BackupVersion, RestoreOutcome, RestoreRequest, VersionEntry };
import { describeFailure, timeoutError, type CommandResult, type CommandRunner, type InteractiveRunner } from './process.js';

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
  /** Every job with its record, read right after the state in the same call (exec, `jobsOnceGone`); undefined when not read. */
  jobs?: BackupJob[] | undefined;
}

export interface StatusOptions {
  /**
   * A backup ID: once it is neither queued nor active, read every job's record in the same
   * call, where the driver can (exec: one `podman exec` for both). While it is queued or
   * active its record cannot hold its end yet (Runner.cs writes it as the task ends), so the
   * records are not read then and each look costs one status call only.
   */
  jobsOnceGone?: string;
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
  /** When Duplicati started and finished the task (TaskStarted, TaskFinished), epoch ms. */
  startedAt?: number | undefined;
  finishedAt?: number | undefined;
}

/** A job's ID and record, read before its run once Duplicati was seen idle: `run` then costs one call. */
export interface PreparedRun {
  job: string;
  backupId: string;
  backupName: string;
  recordBefore: JobRecord;
}

/** What a job's `run` call returned: the task it queued, and what is known of it (its verdict is `result`'s). */
export interface JobRun {
  /** The backup's ID from `Running backup NAME (ID: N)`, else from the job list read before `run`; undefined when neither names it. */
  backupId: string | undefined;
  backupName: string | undefined;
  /** `run` had to be ended after run_timeout; the job may or may not be queued. */
  timedOut: boolean;
  output: string;
  /** The task `run` queued or joined, where the driver learns it (REST API). */
  task?: number | undefined;
  /** The job's record, read by `run` itself just before it runs the job (after the last idle check). */
  recordBefore?: JobRecord | undefined;
  /** The job's record read with the status that showed the job gone (exec: `status` with `jobsOnceGone`); the verdict reads it again when absent. */
  recordAfter?: JobRecord | undefined;
  /** How the task ended, once known (REST API). */
  taskEnd?: TaskState | undefined;
  /** When `run` was asked, and when it said the job is queued (its request returned), epoch ms. */
  requestedAt?: number | undefined;
  queuedAt?: number | undefined;
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
  status(signal?: AbortSignal, options?: StatusOptions): Promise<DuplicatiStatus>;
  /**
   * Readies the job's run without reading anything (exec: opens the `podman exec` that will
   * run it), so that `run` needs no new exec; the driver ends it if it is never run. Resolves
   * once it is ready (or could not be made so: `run` then goes another way); never rejects.
   */
  ready?(job: string): Promise<void>;
  /** Reads the job's ID and record before its run, after Duplicati was seen idle; `run` then only enqueues. */
  prepare?(job: string, signal?: AbortSignal): Promise<PreparedRun>;
  /**
   * Enqueues the job; without `prepared` it reads the job's record (recordBefore) first, as
   * close to the run as the driver can.
   */
  run(job: string, signal?: AbortSignal, prepared?: PreparedRun): Promise<JobRun>;
  /** How the job that `run` started ended. */
  result(run: JobRun, signal?: AbortSignal): Promise<JobResult>;
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
  /** The folders a backup job reads, as its container sees them. */
  jobSources?(backupId: string, signal?: AbortSignal): Promise<string[]>;
  /** The job's own filters, in order (Backup.Filters: include or exclude, the expression). */
  jobFilters?(backupId: string, signal?: AbortSignal): Promise<Array<{ include: boolean; expression: string }>>;
  /** Every version of a job, newest first. */
  versions?(backupId: string, signal?: AbortSignal): Promise<BackupVersion[]>;
  /** The entries of one version below `folder` (as the container sees it), the folder itself included. */
  versionEntries?(backupId: string, version: BackupVersion, folder: string, signal?: AbortSignal): Promise<VersionEntry[]>;
  /**
   * Restores into an empty folder, with `overwrite=false`, `permissions=true` and
   * `skip_metadata=false` always given, and the exact version asked for; resolves once the
   * restore has ended (an abort signal ends it too, where the driver can: REST abort, SIGTERM
   * inside the container).
   */
  restore?(request: RestoreRequest, signal?: AbortSignal): Promise<RestoreOutcome>;
  /** Pauses the whole server: queued tasks wait, and none of a job opens its database (exec driver: `pause`). */
  pause?(signal?: AbortSignal): Promise<void>;
  /** Resumes it (exec driver: `resume`). */
  resume?(signal?: AbortSignal): Promise<void>;
  /**
   * Resolves once the server state may have changed since `since`, or after maxWaitMs: the
   * REST API long-polls. Drivers that cannot be told leave it out, and the waiter polls.
   */
  waitForChange?(since: DuplicatiStatus, maxWaitMs: number, signal?: AbortSignal): Promise<DuplicatiStatus | void>;
  /** Ends what the driver keeps open (exec sessions); later calls open them again. */
  close?(): Promise<void>;
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

/**
 * The verdict of the exec driver, from the job's record before and after its run and, where
 * the server printed one, the `Backup status:` line of `run --wait` (2.2.0.3 and later).
 */
export function resultFromRecords(before: JobRecord | undefined, after: JobRecord | undefined, backupStatus?: string): JobResult {
  switch (recordChange(before, after)) {
    case 'error':
      return { result: 'Fatal', message: after?.LastErrorMessage || 'Duplicati recorded an error (LastErrorDate) without a message' };
    case 'finished':
      return resultFromStatus(backupStatus);
    default:
      return { result: 'Fatal', message: 'Duplicati recorded neither a completed backup nor an error for this run (was it stopped?)' };
  }
}

/**
 * A completed backup's result as `Backup status:` says it: the ParsedResult of the job's newest
 * log row (Connection.GetBackupStatus). Read only once the record says this run completed (a
 * stopped run's row also says Success, and writes no LastBackupFinished). Anything else
 * (`No log generated`, `Failed to parse backup log`, no line at all: servers before 2.2.0.3,
 * or a job that ended before run --wait first looked) leaves the result unseen.
 */
export function resultFromStatus(backupStatus: string | undefined): JobResult {
  const said = `Duplicati's log says ${backupStatus} (duplicati-server-util run --wait: "Backup status: ${backupStatus}"); the exec driver cannot read the messages themselves: see the job's log in Duplicati`;
  switch (backupStatus) {
    case 'Success':
      return { result: 'Success' };
    case 'Warning':
    case 'Error':
    case 'Fatal':
      return { result: backupStatus, message: said };
    default:
      return { result: 'Completed', message: 'the backup completed (LastBackupFinished); the exec driver cannot see whether with warnings or errors' };
  }
}

/** What the last line of `run --wait` says: the status, or undefined when it gives none. */
export function backupStatusOf(output: string): string | undefined {
  return runWaitLines.status.exec(output)?.[1]?.trim();
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
/** After a job ended, how long `run --wait` may take to print its result: a poll (1 s) and a log read. */
const backupStatusTimeoutMs = 15_000;
/** How long an armed run's `podman exec` may take to start before the driver goes on without waiting. */
const armedStartMs = 30_000;
/** An armed run's outer bound inside the container, past run_timeout and wait_timeout. */
const armedMarginMs = 60_000;
/** The outer bound on `podman exec ... run` lets the inner `timeout`s fire first. */
const outerRunMarginMs = 3_000;

/**
 * An armed run's outer bound inside the container, in seconds: past run_timeout and
 * wait_timeout (the driver ends it long before, or the end of its input does).
 */
export function armedBoundSeconds(settings: Pick<DuplicatiSettings, 'runTimeoutMs' | 'waitTimeoutMs'>): number {
  return Number(seconds(settings.runTimeoutMs + settings.waitTimeoutMs + armedMarginMs));
}

/** How the jobs and their records are listed: `--json` (2.2 and later, OutputInterceptor.cs), else `--detailed` lines. */
export const jsonListArgs = ['--json', 'list-backups'] as const;
const detailedListArgs = ['list-backups', '--detailed'] as const;

/** The command line of one duplicati-server-util call; the dry run shows the same. */
export function serverUtilArgv(settings: Pick<DuplicatiSettings, 'container' | 'serverUtil'>, ...args: string[]): string[] {
  return ['podman', 'exec', settings.container, settings.serverUtil, ...args];
}

/** What ends each chained command's output but the last: a line of its own with the exit code. */
const partEnd = /\n@stack-backup:exit=(\d+)\n/g;

/**
 * One `podman exec` that runs several commands in order inside the container (its `sh`).
 * Every command but the last writes both its streams to stdout, then an empty line and
 * `@stack-backup:exit=N`; the chain stops at the first one that fails, with its exit code.
 * The last replaces the shell (`exec`): its streams and its exit code are the exec's.
 */
export function chainedArgv(container: string, commands: ReadonlyArray<readonly string[]>): string[] {
  const script = commands
    .map((command, index) =>
      index === commands.length - 1 ? `exec ${shellLine(command)}` : `${shellLine(command)} 2>&1; e=$?; echo; echo "@stack-backup:exit=$e"; [ "$e" = 0 ] || exit "$e"`,
    )
    .join('; ');
  return ['podman', 'exec', container, 'sh', '-c', script];
}

export interface ChainedPart {
  output: string;
  exitCode: number;
}

/** Splits a chain's stdout: the commands that finished (output, exit code), and the rest, the stdout of the one that came next. */
export function splitChained(stdout: string): { parts: ChainedPart[]; rest: string } {
  const parts: ChainedPart[] = [];
  let from = 0;
  for (const match of stdout.matchAll(partEnd)) {
    parts.push({ output: stdout.slice(from, match.index), exitCode: Number(match[1]) });
    from = match.index + match[0].length;
  }
  return { parts, rest: stdout.slice(from) };
}

const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));

/**
 * The command line of `run`: one `podman exec` that first lists the jobs with their records
 * (the record before the run, read after the last idle check) and then runs the job; the dry
 * run shows the same. Both are bounded inside the container too (see run below): killing the
 * `podman exec` client ends neither, and a listing that hung past the client's end must not
 * go on to run the job against the restarted stack.
 */
export function serverUtilRunArgv(
  settings: Pick<DuplicatiSettings, 'container' | 'serverUtil' | 'runTimeoutMs'>,
  job: string,
  list: readonly string[] = jsonListArgs,
): string[] {
  return chainedArgv(settings.container, [
    ['timeout', '-s', 'KILL', seconds(statusTimeoutMs), settings.serverUtil, ...list],
    ['timeout', '-s', 'KILL', seconds(settings.runTimeoutMs), settings.serverUtil, 'run', '--', job],
  ]);
}

/**
 * The command line of a poll that follows backup `backupId`: the server's state, and, only
 * when that backup is neither queued nor active (its `BackupId = N` ends no line of the
 * state, ServerStatus.cs), every job's record, in one `podman exec`; the dry run shows the
 * same. The state's output ends with a line `@stack-backup:exit=N` as in chainedArgv.
 */
export function serverUtilPollArgv(settings: Pick<DuplicatiSettings, 'container' | 'serverUtil'>, backupId: string, list: readonly string[] = jsonListArgs): string[] {
  // Duplicati's backup IDs are numbers; anything else never matches, and the records are always read.
  const busy = /^[A-Za-z0-9_-]+$/.test(backupId) ? `*"BackupId = ${backupId}"|*"BackupId = ${backupId}"[!0-9A-Za-z_-]*` : '*"@never@"';
  const script =
    `s=$(${shellLine([settings.serverUtil, 'status'])} 2>&1); e=$?; printf "%s\\n" "$s"; echo; echo "@stack-backup:exit=$e"; [ "$e" = 0 ] || exit "$e"; ` +
    `case "$s" in ${busy}) exit 0 ;; esac; exec ${shellLine([settings.serverUtil, ...list])}`;
  return ['podman', 'exec', settings.container, 'sh', '-c', script];
}

/** The container has no `timeout` (it bounds `run` inside the container) or no `sh` (it chains the calls). */
function missingTool(output: string): CommandError | undefined {
  if (/timeout.*(not found|no such file)|executable file .timeout./i.test(output)) {
    return new CommandError(`the Duplicati container has no "timeout" command, which bounds "run" inside it (run_timeout)`, output);
  }
  if (/executable file .sh. not found|exec: "?sh"?: .*not found|\bsh: (no such file|not found)/i.test(output)) {
    return new CommandError(`the Duplicati container has no "sh", which runs the calls that follow a job in one podman exec`, output);
  }
  return undefined;
}

/** A chained command that failed, described as describeFailure would, naming the command that failed. */
function chainFailure(result: CommandResult, what: readonly string[], part: ChainedPart): CommandError {
  const lastLine = part.output.trim().split('\n').pop() ?? '';
  return new CommandError(`${shellLine(result.argv)}: ${what.join(' ')}: exit ${part.exitCode}${lastLine ? `: ${lastLine}` : ''}`, part.output);
}

export interface ExecOptions {
  /** Opens exec sessions (duplicati-session.ts); without it every call is a `podman exec` of its own. */
  open?: InteractiveRunner | undefined;
  clock?: Clock | undefined;
}

export function createExecDuplicati(run: CommandRunner, settings: DuplicatiSettings, options: ExecOptions = {}): Duplicati {
  const clock = options.clock ?? systemClock;
  const argv = (...args: string[]) => serverUtilArgv(settings, ...args);
  /** Whether the tool takes `--json`; learned from the first list (servers before 2.2 do not). */
  let json: boolean | undefined;
  const session = options.open ? new RequestSession(options.open, sessionArgv(settings), clock) : undefined;
  /** Sessions that died before they ever answered (no `sh`, no container): after two, calls go through one-shot execs only. */
  let deadSessions = 0;
  let sessionAnswered = false;
  /** Armed runs by job, waiting to be fired; and those fired, by the run they made. */
  const armed = new Map<string, ArmedRun>();
  const fired = new WeakMap<JobRun, ArmedRun>();
  const live = new Set<ArmedRun>();

  /**
   * One call of the tool: through the session when there is one, else (or when the session died
   * before it answered) through a `podman exec` of its own, with the same bounds.
   */
  async function call(request: string, oneShot: readonly string[], signal?: AbortSignal): Promise<CommandResult> {
    if (session && deadSessions < 2) {
      const answer = await session.request(request, oneShot, statusTimeoutMs, signal);
      if (answer) {
        sessionAnswered = true;
        deadSessions = 0;
        return answer;
      }
      if (!sessionAnswered) deadSessions += 1;
      sessionAnswered = false;
    }
    return run(oneShot, { timeoutMs: statusTimeoutMs, signal });
  }

  const format = (list: readonly string[]): ListFormat => (list === jsonListArgs ? 'json' : 'detailed');

  async function read(args: readonly string[], signal?: AbortSignal) {
    const request = args[0] === 'status' ? 'status' : `list ${format(args)}`;
    const result = await call(request, argv(...args), signal);
    if (result.timedOut) throw timeoutError(result, statusTimeoutMs);
    return result;
  }

  const listArgs = (): readonly string[] => (json === false ? detailedListArgs : jsonListArgs);

  /** Parses a listing made with `list`; undefined when `--json` output cannot be read. */
  function parseListing(list: readonly string[], output: string): BackupJob[] | undefined {
    if (list !== jsonListArgs) return parseJobListDetailed(output);
    const jobs = parseJobListJson(output);
    if (jobs) json = true;
    return jobs;
  }

  /** A `--json` listing refused by a tool before 2.2: learn it, so the caller lists again with `--detailed`. */
  function refusedJson(list: readonly string[], exitCode: number | undefined, output: string): boolean {
    if (list !== jsonListArgs || json === true || exitCode === 0 || !/Unrecognized|--json/i.test(output)) return false;
    json = false;
    return true;
  }

  async function statusWithJobs(backupId: string, signal?: AbortSignal): Promise<DuplicatiStatus> {
    const list = listArgs();
    // Duplicati's backup IDs are numbers; anything else never matches, and the records are always read.
    const id = /^[A-Za-z0-9_-]+$/.test(backupId) ? backupId : '@never@';
    const result = await call(`poll ${format(list)} ${id}`, serverUtilPollArgv(settings, backupId, list), signal);
    if (result.timedOut) throw timeoutError(result, statusTimeoutMs);
    const { parts, rest } = splitChained(result.stdout);
    const state = parts[0];
    if (!state) throw missingTool(result.output) ?? new CommandError(describeFailure(result, statusTimeoutMs), result.output);
    if (state.exitCode !== 0) throw chainFailure(result, [settings.serverUtil, 'status'], state);
    const status = parseStatus(state.output);
    if (refusedJson(list, result.exitCode, rest + result.stderr)) return { ...status, jobs: await listJobs(signal) };
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
    // Nothing after the state: the backup was queued or active, and the records were not read.
    if (rest.trim() === '') return status;
    const jobs = parseListing(list, rest);
    if (!jobs) throw new CommandError(`${shellLine(result.argv)}: the job list cannot be read`, rest);
    return { ...status, jobs };
  }

  /** Without a session: one `podman exec` reads the record and runs the job (see serverUtilRunArgv). */
  async function runJob(job: string, signal: AbortSignal | undefined): Promise<JobRun> {
    // Killing the `podman exec` client leaves the processes in the container running: bound
    // them there too, so a `run` ended after run_timeout cannot queue the job later, against the
    // restarted stack. RunBackup.cs prints its line before it sends the request. The job's
    // name goes after "--", so a name beginning with "-" is the backup argument, not an
    // option: ServerUtil parses with System.CommandLine (Duplicati/CommandLine/ServerUtil/
    // Program.cs, CommandLineBuilder without EnableLegacyDoubleDashBehavior), where tokens
    // after "--" are arguments; `run` takes one argument, "backup" (Commands/RunBackup.cs).
    // The listing comes first in the same exec: the record before the run (ListBackups.cs,
    // Metadata), read just before it, at the cost of one `podman exec` for both.
    const list = listArgs();
    const command = serverUtilRunArgv(settings, job, list);
    const requestedAt = clock.now();
    const result = await run(command, { timeoutMs: statusTimeoutMs + settings.runTimeoutMs + outerRunMarginMs, signal });
    const { parts, rest } = splitChained(result.stdout);
    const listed = parts[0];
    if (!listed) {
      // The listing never finished, so `run` never began: the exec itself failed (no
      // container, no sh) or hung.
      if (result.timedOut) throw timeoutError(result, statusTimeoutMs + settings.runTimeoutMs);
      throw missingTool(result.output) ?? new CommandError(describeFailure(result, statusTimeoutMs), result.output);
    }
    if (listed.exitCode !== 0) {
      // The chain stops at the listing: nothing was run.
      if (refusedJson(list, listed.exitCode, listed.output)) return runJob(job, signal);
      const missing = missingTool(listed.output);
      if (missing) throw missing;
      // timeout(1) exits 124, or 137 when it had to send KILL
      if (listed.exitCode === 124 || listed.exitCode === 137) {
        throw new TimeoutError(`${shellLine(command)}: ${[settings.serverUtil, ...list].join(' ')}: no answer within ${seconds(statusTimeoutMs)} s; the job was not run`);
      }
      throw chainFailure(result, [settings.serverUtil, ...list], listed);
    }
    const jobs = parseListing(list, listed.output);
    const output = [rest, result.stderr].filter((text) => text.trim() !== '').join('\n');
    const parsed = parseRunLine(rest);
    const timedOut = result.timedOut || result.exitCode === 124 || result.exitCode === 137;
    if (!timedOut && result.exitCode !== 0) {
      if (/No backup found/i.test(output)) {
        throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`, output);
      }
      throw missingTool(output) ?? new CommandError(describeFailure(result, settings.runTimeoutMs), result.output);
    }
    if (!jobs) {
      // `run` was sent all the same: the job may be queued, and without its record before the
      // run its end cannot be told from an older one. Fail, naming it.
      throw new CommandError(`the job list read before "run ${job}" cannot be read, but "run" was sent: Duplicati may run job ${job} against the restarted stack`, listed.output);
    }
    const known = (parsed && jobs.find((entry) => entry.id === parsed.backupId)) || findJob(jobs, job);
    if (!parsed && !known) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`, output);
    return {
      backupId: parsed?.backupId ?? known?.id,
      backupName: parsed?.backupName ?? known?.name,
      timedOut,
      output,
      recordBefore: known?.record ?? {},
      requestedAt,
      queuedAt: timedOut ? undefined : clock.now(),
    };
  }

  /** The armed run of a job, opened now if there is none (or it died). */
  function arm(job: string): ArmedRun | undefined {
    if (!options.open || deadSessions >= 2) return undefined;
    const existing = armed.get(job);
    if (existing?.alive && !existing.fired) return existing;
    existing?.end();
    const fresh = new ArmedRun(options.open, armedRunArgv(settings, job, armedBoundSeconds(settings)), clock);
    armed.set(job, fresh);
    live.add(fresh);
    void fresh.exited.then(() => live.delete(fresh));
    return fresh;
  }

  async function prepare(job: string, signal?: AbortSignal): Promise<PreparedRun> {
    const found = findJob(await listJobs(signal), job);
    if (!found) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`);
    if (!armed.get(job)?.alive) arm(job);
    return { job, backupId: found.id, backupName: found.name, recordBefore: found.record ?? {} };
  }

  /**
   * Through the armed run: `run` is the line that starts `run --wait` in the exec opened
   * before; the job is queued once it prints `Waiting for backup to finish...` (RunBackup.cs
   * prints it after the run request returned). Past run_timeout it is ended inside the
   * container, so it cannot queue the job later.
   */
  async function runArmed(job: string, signal: AbortSignal | undefined, prepared: PreparedRun | undefined): Promise<JobRun> {
    const before = prepared ?? (await prepare(job, signal));
    const armedRun = armed.get(job) ?? arm(job);
    armed.delete(job);
    const requestedAt = clock.now();
    if (!armedRun?.alive || !armedRun.fire()) {
      armedRun?.end();
      return runJob(job, signal);
    }
    let seen: 'seen' | 'exited' | 'timeout';
    try {
      seen = await armedRun.until((output) => runWaitLines.queued.test(output), settings.runTimeoutMs, signal);
    } catch (error) {
      // Ended (a signal) while `run` was under way: it is ended in the container too.
      armedRun.end();
      throw error;
    }
    const output = armedRun.output.replace(runWaitLines.exit, '\n').trim();
    const parsed = parseRunLine(output);
    const outcome: JobRun = {
      backupId: parsed?.backupId ?? before.backupId,
      backupName: parsed?.backupName ?? before.backupName,
      timedOut: seen === 'timeout',
      output,
      recordBefore: before.recordBefore,
      requestedAt,
      queuedAt: seen === 'seen' ? clock.now() : undefined,
    };
    if (seen === 'seen') {
      fired.set(outcome, armedRun);
      return outcome;
    }
    armedRun.end();
    if (seen === 'timeout') return outcome;
    // It ended before it said the job is queued.
    if (/No backup found/i.test(output)) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`, output);
    if (!/Connecting to|Running backup/.test(output)) {
      // The tool never ran: the exec died (the container restarted). A fresh exec runs the job;
      // had it been queued all the same, `run` joins that task (de-duplicated).
      return runJob(job, signal);
    }
    throw missingTool(output) ?? new CommandError(`${shellLine(armedRun.argv.slice(0, 4))} ... run --wait -- ${job}: exit ${armedRun.exitCode ?? 'unknown'} before the job was queued${output ? `: ${output.split('\n').pop()}` : ''}`, output);
  }

  /** The result line of a fired run, once the job ended: waits for it (bounded), then ends the exec. */
  async function backupStatus(outcome: JobRun, signal?: AbortSignal): Promise<string | undefined> {
    const armedRun = fired.get(outcome);
    if (!armedRun) return undefined;
    try {
      await armedRun.until(
        (output) => runWaitLines.status.test(output) || runWaitLines.finished.test(output) || runWaitLines.lost.test(output),
        backupStatusTimeoutMs,
        signal,
      );
      return backupStatusOf(armedRun.output);
    } finally {
      armedRun.end();
      fired.delete(outcome);
    }
  }

  async function listJobs(signal?: AbortSignal): Promise<BackupJob[]> {
    if (json !== false) {
      const result = await read(jsonListArgs, signal);
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
    const result = await read(detailedListArgs, signal);
    if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
    return parseJobListDetailed(result.stdout);
  }

  return {
    // Restores, versions and the job's sources go through duplicati-cli and the job's export (duplicati-cli.ts).
    ...createExecRestore(run, settings),
    async status(signal, statusOptions) {
      if (statusOptions?.jobsOnceGone !== undefined) return statusWithJobs(statusOptions.jobsOnceGone, signal);
      const result = await read(['status'], signal);
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      return parseStatus(result.stdout);
    },
    async ready(job) {
      await arm(job)?.started(armedStartMs);
    },
    prepare,
    run: (job, signal, prepared) => (options.open && deadSessions < 2 ? runArmed(job, signal, prepared) : runJob(job, signal)),
    async result(outcome, signal) {
      try {
        // The record holds no ParsedResult: LastErrorDate says the task threw, LastBackupFinished
        // alone that a backup completed, neither that it was stopped (Runner.cs). Runner.Run
        // writes it (UpdateMetadata, UpdateMetadataError) within the task, before the task ends,
        // so a record listed after the status that showed the job gone is final, the same as one
        // listed in a later call; only without one is it listed again.
        const after =
          outcome.recordAfter ?? (outcome.backupId === undefined ? undefined : (await listJobs(signal)).find((job) => job.id === outcome.backupId)?.record);
        outcome.recordAfter = after;
        // A completed backup's result is the `Backup status:` line of `run --wait` (2.2.0.3
        // and later), which reads the job's log once the job is gone.
        const status = recordChange(outcome.recordBefore, after) === 'finished' ? await backupStatus(outcome, signal) : undefined;
        return resultFromRecords(outcome.recordBefore, after, status);
      } finally {
        fired.get(outcome)?.end();
        fired.delete(outcome);
      }
    },
    listJobs,
    async version(signal) {
      // System.CommandLine's --version (Program.cs UseDefaults): the informational version.
      const result = await run(argv('--version'), { timeoutMs: statusTimeoutMs, signal });
      if (result.timedOut) throw timeoutError(result, statusTimeoutMs);
      if (result.exitCode !== 0) throw new CommandError(describeFailure(result, statusTimeoutMs), result.output);
      const line = result.stdout.split('\n').find((text) => parseVersion(text) !== undefined);
      if (!line) throw new CommandError(`${settings.serverUtil} --version printed no version`, result.output);
      if (json === undefined) json = versionAtLeast(line, jsonSince);
      return line.trim();
    },
    async close() {
      for (const armedRun of [...live]) armedRun.end();
      armed.clear();
      await session?.close();
    },
  };
}
