/**
 * Duplicati through its REST API (`/api/v1`): sign in with the password, follow the server
 * state by long-polling, and read each backup's own result from its log. Uses Node's fetch;
 * the password is never logged or put in an error message.
 */
import { CommandError, TimeoutError } from '../errors.js';
import type { Clock } from './clock.js';
import type { BackupVersion, RestoreOutcome, VersionEntry } from './backup-versions.js';
import type { BackupJob, Duplicati, DuplicatiStatus, JobProgress, JobResult, JobResultKind, PreparedRun, TaskReference, TaskState } from './duplicati.js';
import { UnknownJobError } from './duplicati.js';
import { filtersOf } from './duplicati-cli.js';

export interface ApiSettings {
  url: string;
  /** Read when needed, never stored in the configuration or logs. */
  password: () => string;
  runTimeoutMs: number;
  /** How long a restore may take, and may wait on a paused server (wait_timeout, paused_timeout). */
  waitTimeoutMs?: number;
  pausedTimeoutMs?: number;
  /** Every wait and deadline (requests, retries, token renewal) goes by it, so tests need no real time. */
  clock: Clock;
}

/**
 * While a task holds a backup's database, 2.3.x answers `GET backup/{id}/log` with
 * DatabaseLockedException (BackupGet.cs ExecuteGetLog), which the exception handler turns
 * into HTTP 400 with `HelpId: "DatabaseLocked"` (DuplicatiWebserver.cs). The task has ended
 * when we read, so the lock goes soon: retry, bounded.
 */
const lockedLogRetries = 10;
const lockedLogDelayMs = 500;

const requestTimeoutMs = 30_000;
/** Access tokens last 15 minutes; sign in again a minute before. */
const assumedTokenLifetimeMs = 15 * 60_000;
const renewBeforeMs = 60_000;
/** Duplicati accepts long-poll durations from 10 s to 1 h. */
const shortestLongPollMs = 10_000;
const longestLongPollMs = 30_000;

interface Tuple {
  Item1: number;
  Item2: string;
}

interface ServerState {
  ProgramState: string | number;
  ActiveTask: Tuple | null;
  SchedulerQueueIds: Tuple[] | null;
  LastEventID: number;
}

interface BackupEntry {
  Backup: { ID: string; Name: string; Metadata?: Record<string, string> | null };
}

interface LogEntry {
  ID?: number;
  Timestamp?: number;
  Type?: string;
  Message?: string;
  Exception?: string | null;
}

class HttpError extends CommandError {
  constructor(
    message: string,
    readonly status: number,
    body: string,
  ) {
    super(message, body);
  }
}

/** When the JWT says it expires; undefined when the token is not a JWT we can read. */
function tokenExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: number };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

const toTask = (tuple: Tuple | null | undefined): TaskReference | undefined =>
  tuple ? { task: Number(tuple.Item1), backupId: String(tuple.Item2) } : undefined;

export function statusFromServerState(state: ServerState): DuplicatiStatus {
  const paused = state.ProgramState === 'Paused' || state.ProgramState === 1;
  return {
    paused,
    active: toTask(state.ActiveTask),
    queue: (state.SchedulerQueueIds ?? []).map((tuple) => toTask(tuple)!),
    eventId: state.LastEventID,
  };
}

const knownResults: readonly JobResultKind[] = ['Success', 'Warning', 'Error', 'Fatal'];

function isLockedLog(error: unknown): boolean {
  return error instanceof HttpError && error.status === 400 && /DatabaseLocked|in use by another operation/i.test(error.output ?? '');
}

/** The newest backup result in a log page (newest first): its ParsedResult and Duplicati's words. */
export function resultFromLog(entries: readonly LogEntry[]): JobResult {
  for (const entry of entries) {
    if (typeof entry.Message !== 'string') continue;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(entry.Message) as Record<string, unknown>;
    } catch {
      continue;
    }
    const parsed = String(message.ParsedResult ?? '');
    if (!knownResults.includes(parsed as JobResultKind)) continue;
    const words = [...asList(message.Errors), ...asList(message.Warnings), entry.Exception ?? ''].filter(Boolean);
    return { result: parsed as JobResultKind, message: words.length > 0 ? words.slice(0, 5).join('; ') : undefined };
  }
  return { result: 'Unknown', message: 'the backup log holds no result' };
}

/** TaskStarted/TaskFinished (ISO, UTC) as epoch ms; undefined when absent or unreadable. */
function instant(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
  return Number.isNaN(ms) ? undefined : ms;
}

function asList(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** How long an aborted restore task may take to end. */
const abortWaitMs = 30_000;

interface FilesetEntry {
  Version?: number;
  Time?: string;
  FileCount?: number;
  FileSizes?: number;
}

function versionOf(entry: FilesetEntry): BackupVersion {
  const raw = String(entry.Time ?? '');
  const parsed = Date.parse(raw);
  return {
    version: Number(entry.Version ?? 0),
    time: Number.isNaN(parsed) ? raw : new Date(parsed).toISOString(),
    fileCount: typeof entry.FileCount === 'number' && entry.FileCount >= 0 ? entry.FileCount : undefined,
    sizeBytes: typeof entry.FileSizes === 'number' && entry.FileSizes >= 0 ? entry.FileSizes : undefined,
    duplicatiTime: raw,
  };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A Restore result row written at or after `since` (ms): ParsedResult, RestoredFiles, SizeOfRestoredFiles, Warnings, Errors (ResultClasses.cs RestoreResults). */
export function restoreOutcomeFromLog(rows: readonly LogEntry[], since: number): RestoreOutcome | undefined {
  for (const row of rows) {
    if (row.Type !== undefined && row.Type !== 'Result') continue;
    if (typeof row.Timestamp === 'number' && row.Timestamp * 1000 < since - 2000) continue;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(String(row.Message ?? '')) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (message.MainOperation !== 'Restore') continue;
    const parsed = String(message.ParsedResult ?? '');
    const result = parsed === 'Success' || parsed === 'Warning' || parsed === 'Error' || parsed === 'Fatal' ? parsed : 'Fatal';
    return {
      result,
      restoredFiles: Number(message.RestoredFiles ?? 0),
      sizeBytes: typeof message.SizeOfRestoredFiles === 'number' ? message.SizeOfRestoredFiles : undefined,
      messages: [...asList(message.Errors), ...asList(message.Warnings), ...(row.Exception ? [row.Exception] : [])],
    };
  }
  return undefined;
}

export function createApiDuplicati(settings: ApiSettings): Duplicati {
  const base = settings.url.replace(/\/+$/, '');
  const { clock } = settings;
  let token: { value: string; renewAt: number } | undefined;

  async function send(method: string, path: string, options: { body?: unknown; auth?: boolean; timeoutMs?: number; signal?: AbortSignal | undefined } = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? requestTimeoutMs;
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.auth !== false) headers.Authorization = `Bearer ${await accessToken(options.signal)}`;
    // The deadline covers the answer and its body: a server that sends headers and then stalls is bounded too.
    const deadline = clock.timeout(timeoutMs, () => new TimeoutError(`${method} ${base}${path}: no answer within ${Math.round(timeoutMs / 1000)} s`));
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal ? AbortSignal.any([deadline.signal, options.signal]) : deadline.signal,
      });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (deadline.signal.aborted) throw deadline.signal.reason;
      throw new CommandError(`${method} ${base}${path}: ${(error as Error).message}${(error as { cause?: Error }).cause ? ` (${(error as { cause: Error }).cause.message})` : ''}`);
    } finally {
      deadline.clear();
    }
    if (!response.ok) throw new HttpError(`${method} ${base}${path}: HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`, response.status, text);
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new CommandError(`${method} ${base}${path}: the answer is not JSON (is duplicati.url Duplicati's?): ${text.slice(0, 80)}`);
    }
  }

  async function signIn(signal?: AbortSignal): Promise<void> {
    let answer: { AccessToken?: string };
    try {
      answer = (await send('POST', '/api/v1/auth/login', { body: { Password: settings.password(), RememberMe: true }, auth: false, signal })) as { AccessToken?: string };
    } catch (error) {
      if (error instanceof HttpError && error.status === 401) throw new CommandError(`Duplicati refused the password (${base}/api/v1/auth/login: HTTP 401)`);
      throw error;
    }
    if (!answer?.AccessToken) throw new CommandError(`Duplicati's login at ${base} answered without an access token`);
    const expires = tokenExpiry(answer.AccessToken) ?? clock.now() + assumedTokenLifetimeMs;
    token = { value: answer.AccessToken, renewAt: expires - renewBeforeMs };
  }

  async function accessToken(signal?: AbortSignal): Promise<string> {
    if (!token || clock.now() >= token.renewAt) await signIn(signal);
    return token!.value;
  }

  /** A request with the access token; a 401 (the token lapsed early) signs in once more. */
  async function call(method: string, path: string, options: { body?: unknown; timeoutMs?: number; signal?: AbortSignal | undefined } = {}): Promise<unknown> {
    try {
      return await send(method, path, options);
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 401) throw error;
      token = undefined;
      return send(method, path, options);
    }
  }

  async function backups(signal?: AbortSignal): Promise<BackupEntry[]> {
    return ((await call('GET', '/api/v1/backups', { signal })) as BackupEntry[] | undefined) ?? [];
  }

  async function find(job: string, signal?: AbortSignal): Promise<BackupEntry['Backup']> {
    const all = await backups(signal);
    const found =
      all.find((entry) => entry.Backup.ID === job) ?? all.find((entry) => entry.Backup.Name.toLowerCase() === job.toLowerCase());
    if (!found) throw new UnknownJobError(`Duplicati has no backup job with the name or ID "${job}"`);
    return found.Backup;
  }

  async function prepare(job: string, signal?: AbortSignal): Promise<PreparedRun> {
    const backup = await find(job, signal);
    return { job, backupId: backup.ID, backupName: backup.Name, recordBefore: { ...(backup.Metadata ?? {}) } };
  }

  async function readLog(backupId: string, signal?: AbortSignal): Promise<JobResult> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return resultFromLog(((await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}/log?pagesize=5`, { signal })) as LogEntry[]) ?? []);
      } catch (error) {
        if (!isLockedLog(error) || attempt >= lockedLogRetries) throw error;
        await clock.sleep(lockedLogDelayMs, signal);
      }
    }
  }

  return {
    async status(signal) {
      return statusFromServerState((await call('GET', '/api/v1/serverstate', { signal })) as ServerState);
    },
    async waitForChange(since, maxWaitMs, signal) {
      if (since.eventId === undefined || maxWaitMs < shortestLongPollMs) {
        // No long-poll to ask for: a short pause, and the caller looks again.
        await clock.sleep(Math.max(0, Math.min(maxWaitMs, 1000)), signal);
        return;
      }
      const duration = Math.min(longestLongPollMs, maxWaitMs);
      // A token due for renewal before this long-poll ends is renewed now: the calls that follow
      // its answer (the job's end, while the stack is down) must not wait for a sign-in.
      if (token && clock.now() + duration >= token.renewAt) await signIn(signal);
      // The answer is the server state itself (ServerState.cs): the caller looks at it at once,
      // with no second request.
      const answer = await call('GET', `/api/v1/serverstate?longpoll=true&lastEventId=${since.eventId}&duration=${Math.floor(duration / 1000)}s`, {
        timeoutMs: duration + requestTimeoutMs,
        signal,
      });
      return answer && typeof answer === 'object' && 'ProgramState' in answer ? statusFromServerState(answer as ServerState) : undefined;
    },
    prepare,
    async run(job, signal, prepared) {
      const backup = prepared ?? (await prepare(job, signal));
      const receipt = {
        backupId: backup.backupId,
        backupName: backup.backupName,
        timedOut: false,
        output: `Running backup ${backup.backupName} (ID: ${backup.backupId})`,
        recordBefore: backup.recordBefore,
        requestedAt: clock.now(),
      };
      try {
        // BackupPost.cs ExecuteRunBackup: {Status: "OK", ID: taskId}, the queued task or the one
        // that already runs or waits for this backup.
        const started = (await call('POST', `/api/v1/backup/${encodeURIComponent(backup.backupId)}/run`, { timeoutMs: settings.runTimeoutMs, signal })) as { ID?: number };
        const task = typeof started?.ID === 'number' ? started.ID : undefined;
        return { ...receipt, task, output: `${receipt.output}, task ${task ?? '?'}`, queuedAt: clock.now() };
      } catch (error) {
        // As with the exec driver: the job may be queued all the same, so it is followed by polling.
        if (error instanceof TimeoutError) return { ...receipt, timedOut: true };
        throw error;
      }
    },
    async result(run, signal) {
      if (run.backupId === undefined) return { result: 'Unknown', message: 'no backup ID' };
      // A task that threw is Failed with its exception's message (TaskQueueService.GetTaskInfo,
      // Runner.cs rethrows after UpdateMetadataError).
      if (run.taskEnd?.status === 'Failed') {
        return { result: 'Fatal', message: run.taskEnd.errorMessage || 'the Duplicati task failed' };
      }
      const backup = await find(run.backupId, signal);
      const finished = backup.Metadata?.LastBackupFinished ?? '';
      const before = run.recordBefore?.LastBackupFinished ?? '';
      if (finished === '' || finished === before) {
        const errorDate = backup.Metadata?.LastErrorDate ?? '';
        if (errorDate !== '' && errorDate !== (run.recordBefore?.LastErrorDate ?? '')) {
          return { result: 'Fatal', message: backup.Metadata?.LastErrorMessage || 'Duplicati recorded an error (LastErrorDate)' };
        }
        const log = await readLog(run.backupId, signal);
        // A failed run may leave LastBackupFinished alone; its log still says why. A stopped
        // one (Interrupted) writes no LastBackupFinished either.
        return log.result === 'Error' || log.result === 'Fatal'
          ? log
          : { result: 'Fatal', message: `Duplicati recorded no finished backup for this run (LastBackupFinished is still "${finished}"; was it stopped?)` };
      }
      return readLog(run.backupId, signal);
    },
    async task(task, signal) {
      try {
        const answer = (await call('GET', `/api/v1/task/${task}`, { signal })) as {
          Status?: string;
          ErrorMessage?: string | null;
          TaskStarted?: string | null;
          TaskFinished?: string | null;
        };
        const status = answer?.Status;
        if (status === 'Waiting' || status === 'Running' || status === 'Completed' || status === 'Failed') {
          return { status, errorMessage: answer.ErrorMessage ?? undefined, startedAt: instant(answer.TaskStarted), finishedAt: instant(answer.TaskFinished) };
        }
        throw new CommandError(`GET ${base}/api/v1/task/${task}: unknown Status "${status}"`);
      } catch (error) {
        // Only the last 100 results are kept (QueueRunnerService): an unknown task has ended.
        if (error instanceof HttpError && error.status === 404) return { status: 'Gone' } satisfies TaskState;
        throw error;
      }
    },
    async stopTask(task, how, signal) {
      try {
        await call('POST', `/api/v1/task/${task}/${how}`, { signal });
      } catch (error) {
        // 404 "No such task found": it is neither queued nor running any more.
        if (error instanceof HttpError && error.status === 404) return;
        throw error;
      }
    },
    async progress(signal) {
      try {
        const state = (await call('GET', '/api/v1/progressstate', { signal })) as Record<string, unknown>;
        const number = (key: string) => (typeof state?.[key] === 'number' ? (state[key] as number) : 0);
        return {
          phase: String(state?.Phase ?? ''),
          overall: number('OverallProgress'),
          filesDone: number('ProcessedFileCount'),
          filesTotal: number('TotalFileCount'),
          bytesDone: number('ProcessedFileSize'),
          bytesTotal: number('TotalFileSize'),
        } satisfies JobProgress;
      } catch (error) {
        // ProgressState.cs: 404 "No active backup" when none runs.
        if (error instanceof HttpError && error.status === 404) return undefined;
        throw error;
      }
    },
    async version(signal) {
      // SystemInfo.cs (SystemInfoDto): ServerVersionName such as "2.2.0.3_stable_2025-12-04".
      const info = (await call('GET', '/api/v1/systeminfo', { signal })) as { ServerVersion?: string | null; ServerVersionName?: string | null };
      return String(info?.ServerVersionName || info?.ServerVersion || '');
    },
    async listJobs(signal) {
      return (await backups(signal)).map((entry): BackupJob => ({ id: entry.Backup.ID, name: entry.Backup.Name, record: { ...(entry.Backup.Metadata ?? {}) } }));
    },
    async jobFilters(backupId, signal) {
      const answer = (await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}`, { signal })) as { Backup?: { Filters?: unknown } } | undefined;
      return filtersOf(answer?.Backup?.Filters);
    },
    async jobSources(backupId, signal) {
      // WebserverCore/Endpoints/V1/Backup/BackupGet.cs: GET /backup/{id} answers
      // {Schedule, Backup, DisplayNames}; Backup.Sources lists the folders the job reads.
      const answer = (await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}`, { signal })) as { Backup?: { Sources?: string[] | null } } | undefined;
      return [...(answer?.Backup?.Sources ?? [])];
    },
    async versions(backupId, signal) {
      // BackupGet.ExecuteGetFilesetsAsync: newest first; FileCount/FileSizes only with include-metadata
      // (LocalListDatabase.QuickSets gives -1). Time is a local DateTime, written with its offset.
      const answer = (await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}/filesets?include-metadata=true`, { signal })) as FilesetEntry[] | undefined;
      return (answer ?? []).map(versionOf).sort((a, b) => a.version - b.version);
    },
    async versionEntries(backupId, version, folder, signal) {
      // BackupGet.ExecuteGetFilesAsync: the versions at or before `time`; a filter that is not an
      // exact path looks at the newest of them only (ListFilesHandler), which is this one.
      const filter = `[${escapeRegex(folder.replace(/\/+$/, ''))}/.*]`;
      const answer = (await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}/files?time=${encodeURIComponent(version.duplicatiTime)}&filter=${encodeURIComponent(filter)}`, { signal })) as {
        Files?: Array<{ Path?: string; Sizes?: number[] }> | null;
      };
      return (answer?.Files ?? []).map((file): VersionEntry => {
        const entryPath = String(file.Path ?? '');
        const size = file.Sizes?.[0] ?? -1;
        // A size of -1 is a folder (its path ends in "/") or a symlink.
        if (entryPath.endsWith('/')) return { path: entryPath, kind: 'folder', size: undefined };
        return size < 0 ? { path: entryPath, kind: 'symlink', size: undefined } : { path: entryPath, kind: 'file', size };
      });
    },
    async restore(request, signal) {
      // RestoreInputDto: overwrite, permissions and skip_metadata always given, since an omitted one
      // is sent as false and overrides the job's own (2.1.0.5 to 2.3.0.4); `time` as the fileset
      // gave it, so the restore cannot fall back to the newest (LocalDatabase.cs RestoreTimeNoMatch).
      const postedAt = clock.now();
      const started = (await call('POST', `/api/v1/backup/${encodeURIComponent(request.backupId)}/restore`, {
        body: { paths: request.filters, time: request.version.duplicatiTime, restore_path: request.restorePath, overwrite: false, permissions: true, skip_metadata: false },
        signal,
      })) as { ID?: number };
      const task = typeof started?.ID === 'number' ? started.ID : undefined;
      if (task === undefined) throw new CommandError(`POST ${base}/api/v1/backup/${request.backupId}/restore answered no task`);
      const end = await followRestore(task, signal);
      const row = await restoreResult(request.backupId, postedAt, signal);
      if (end.status === 'Failed') {
        return { result: 'Fatal', restoredFiles: row?.restoredFiles ?? 0, sizeBytes: row?.sizeBytes, messages: [end.errorMessage || 'the restore task failed', ...(row?.messages ?? [])] };
      }
      if (!row) return { result: 'Fatal', restoredFiles: 0, sizeBytes: undefined, messages: [`task ${task} ended ${end.status}, but the backup's log holds no restore result`] };
      return row;
    },
  };

  /** Follows a restore task to its end; a paused server past paused_timeout, wait_timeout or an abort stops it (abort: a stop does not end 2.2's restore engine). */
  async function followRestore(task: number, signal: AbortSignal | undefined): Promise<TaskState> {
    const started = clock.now();
    let pausedSince: number | undefined;
    let delay = 100;
    try {
      for (;;) {
        if (signal?.aborted) throw signal.reason;
        const state = await taskState(task, signal);
        if (state.status !== 'Waiting' && state.status !== 'Running') return state;
        const server = statusFromServerState((await call('GET', '/api/v1/serverstate', { signal })) as ServerState);
        pausedSince = server.paused ? (pausedSince ?? clock.now()) : undefined;
        if (pausedSince !== undefined && settings.pausedTimeoutMs !== undefined && clock.now() - pausedSince >= settings.pausedTimeoutMs) {
          throw new CommandError(`the Duplicati server is paused: restore task ${task} did not go on for ${Math.round((clock.now() - pausedSince) / 1000)} s (paused_timeout)`);
        }
        if (settings.waitTimeoutMs !== undefined && clock.now() - started >= settings.waitTimeoutMs) {
          throw new TimeoutError(`restore task ${task}: not done after ${Math.round(settings.waitTimeoutMs / 1000)} s (wait_timeout)`);
        }
        await clock.sleep(delay, signal);
        delay = Math.min(2000, delay * 2);
      }
    } catch (error) {
      await abortRestore(task);
      throw error;
    }
  }

  /** Aborts the task and waits, bounded, until it has ended: nothing may write into the staging folder after. */
  async function abortRestore(task: number): Promise<void> {
    const deadline = clock.timeout(abortWaitMs, () => new TimeoutError(`restore task ${task} did not end within ${abortWaitMs / 1000} s of its abort`));
    try {
      await call('POST', `/api/v1/task/${task}/abort`, { signal: deadline.signal }).catch((error: unknown) => {
        if (!(error instanceof HttpError && error.status === 404)) throw error;
      });
      for (;;) {
        const state = await taskState(task, deadline.signal);
        if (state.status !== 'Waiting' && state.status !== 'Running') return;
        await clock.sleep(250, deadline.signal);
      }
    } catch {
      // Said by the caller's error; the staging folder's removal waits while the job may still run.
    } finally {
      deadline.clear();
    }
  }

  async function taskState(task: number, signal: AbortSignal | undefined): Promise<TaskState> {
    try {
      const answer = (await call('GET', `/api/v1/task/${task}`, { signal })) as { Status?: string; ErrorMessage?: string | null };
      const status = answer?.Status;
      if (status === 'Waiting' || status === 'Running' || status === 'Completed' || status === 'Failed') return { status, errorMessage: answer.ErrorMessage ?? undefined };
      throw new CommandError(`GET ${base}/api/v1/task/${task}: unknown Status "${status}"`);
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) return { status: 'Gone' };
      throw error;
    }
  }

  /** The newest Restore result in the backup's log written since the request (LocalDatabase.WriteResults: a Result row whose Message is the RestoreResults). */
  async function restoreResult(backupId: string, since: number, signal: AbortSignal | undefined): Promise<RestoreOutcome | undefined> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const rows = ((await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}/log?pagesize=20`, { signal })) as LogEntry[] | undefined) ?? [];
        return restoreOutcomeFromLog(rows, since);
      } catch (error) {
        if (!isLockedLog(error) || attempt >= lockedLogRetries) throw error;
        await clock.sleep(lockedLogDelayMs, signal);
      }
    }
  }
}
