/**
 * Duplicati through its REST API (`/api/v1`): sign in with the password, follow the server
 * state by long-polling, and read each backup's own result from its log. Uses Node's fetch;
 * the password is never logged or put in an error message.
 */
import { CommandError, TimeoutError } from '../errors.js';
import type { Clock } from './clock.js';
import type { BackupJob, Duplicati, DuplicatiStatus, JobProgress, JobResult, JobResultKind, PreparedRun, RunOutcome, TaskReference, TaskState } from './duplicati.js';
import { UnknownJobError } from './duplicati.js';

export interface ApiSettings {
  url: string;
  /** Read when needed, never stored in the configuration or logs. */
  password: () => string;
  runTimeoutMs: number;
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
    async jobSources(backupId, signal) {
      // WebserverCore/Endpoints/V1/Backup/BackupGet.cs: GET /backup/{id} answers
      // {Schedule, Backup, DisplayNames}; Backup.Sources lists the folders the job reads.
      const answer = (await call('GET', `/api/v1/backup/${encodeURIComponent(backupId)}`, { signal })) as { Backup?: { Sources?: string[] | null } } | undefined;
      return [...(answer?.Backup?.Sources ?? [])];
    },
  };
}
