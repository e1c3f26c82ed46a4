/**
 * src/adapters/duplicati-api.ts against a real HTTP server on 127.0.0.1 that answers as
 * Duplicati's REST API does (shared/notes/duplicati.md): sign-in and tokens, the server state
 * and its long-poll, running jobs by name or ID, and each backup's result read from its log.
 * Time is the fake clock's: the server holds an answer until the test lets it go, and the
 * driver's deadlines fire when the test moves the clock on, so no test waits real time.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UnknownJobError, type Duplicati, type JobRun } from '../../src/adapters/duplicati.js';
import { createApiDuplicati, resultFromLog, statusFromServerState } from '../../src/adapters/duplicati-api.js';
import { AbortedError, CommandError, TimeoutError } from '../../src/errors.js';
import { FakeClock } from '../fakes.js';

const password = 'pw-Hunter2-secret';

interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  body: string;
  /** The status the server answered with. */
  status: number;
}

interface Backup {
  ID: string;
  Name: string;
  Metadata: Record<string, string>;
}

interface LogEntry {
  ID: number;
  Type: string;
  Message: string;
  Exception?: string | null;
}

/** A log entry as Duplicati writes one: Message is a JSON string holding ParsedResult. */
function resultEntry(id: number, parsedResult: string, extra: { Errors?: string[]; Warnings?: string[]; Exception?: string } = {}): LogEntry {
  const { Exception, ...words } = extra;
  return {
    ID: id,
    Type: 'Result',
    Message: JSON.stringify({ MainOperation: 'Backup', ParsedResult: parsedResult, Errors: [], Warnings: [], ...words }),
    Exception: Exception ?? null,
  };
}

/** A base64url JWT with the given exp (seconds); the signature is not checked by the client. */
function fakeJwt(expSeconds: number, subject: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: subject, exp: expSeconds })}.c2lnbmF0dXJl`;
}

/** Duplicati's REST API, as far as stack-backup uses it. */
class FakeDuplicatiServer {
  password = password;
  /** Tokens the server accepts now. */
  readonly tokens = new Set<string>();
  /** Signs in, then refuses the token it gave. */
  refuseTokens = false;
  /** What the next sign-ins hand out; default "token-N". */
  issueToken: (login: number) => string = (login) => `token-${login}`;
  logins = 0;
  readonly requests: SeenRequest[] = [];
  readonly backups: Backup[] = [
    { ID: '1', Name: 'app', Metadata: { LastBackupFinished: '20240101T000000Z' } },
    { ID: '2', Name: 'Other Job', Metadata: { LastBackupFinished: '20240102T000000Z' } },
  ];
  state: { ProgramState: string | number; ActiveTask: { Item1: number; Item2: string } | null; SchedulerQueueIds: Array<{ Item1: number; Item2: string }>; LastEventID: number } = {
    ProgramState: 'Running',
    ActiveTask: null,
    SchedulerQueueIds: [],
    LastEventID: 41,
  };
  readonly logs = new Map<string, LogEntry[]>();
  /** Called when a backup is run, with its ID (to finish it: change metadata and log). */
  onRun: ((id: string) => void) | undefined;
  /** Long-polls are answered only once the test calls release() (or the server closes). */
  holdLongPolls = false;
  /** POST backup/N/run is answered (after the job is queued) only once the test calls release(). */
  holdRuns = false;
  private held: Array<() => void> = [];
  private arrivals: Array<{ matches: (request: SeenRequest) => boolean; resolve: () => void }> = [];
  /** Status POST backup/N/run answers with. */
  runStatus = 200;
  /** GET task/N answers, by task ID (absent: 404 "No such task found"). */
  readonly taskStates = new Map<number, { Status: string; ErrorMessage?: string | null; TaskStarted?: string; TaskFinished?: string }>();
  /** How many more log reads answer DatabaseLockedException (HTTP 400, BackupGet.cs). */
  lockedLogReads = 0;
  version = '2.2.0.3_stable_2025-12-04';
  private server: Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((request, response) => {
      void this.handle(request, response);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Answers every held request. */
  release(): void {
    for (const answer of this.held.splice(0)) answer();
  }

  /** Resolves once a request that matches has arrived (at once if one has). */
  arrived(matches: (request: SeenRequest) => boolean): Promise<void> {
    if (this.requests.some(matches)) return Promise.resolve();
    return new Promise((resolve) => this.arrivals.push({ matches, resolve }));
  }

  private hold(): Promise<void> {
    return new Promise((resolve) => this.held.push(resolve));
  }

  async close(): Promise<void> {
    this.release();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  /** Non-login requests, as "METHOD path". */
  calls(): string[] {
    return this.requests.map((request) => `${request.method} ${request.path}`);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of request) body += String(chunk);
    const url = new URL(request.url ?? '/', 'http://localhost');
    const seen: SeenRequest = {
      method: request.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      authorization: request.headers.authorization,
      body,
      status: 0,
    };
    this.requests.push(seen);
    for (const arrival of this.arrivals.filter((entry) => entry.matches(seen))) {
      this.arrivals.splice(this.arrivals.indexOf(arrival), 1);
      arrival.resolve();
    }
    const answer = (status: number, value?: unknown) => {
      seen.status = status;
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(value === undefined ? '' : JSON.stringify(value));
    };
    if (seen.method === 'POST' && url.pathname === '/api/v1/auth/login') {
      const credentials = JSON.parse(body || '{}') as { Password?: string; RememberMe?: boolean };
      if (credentials.Password !== this.password) return answer(401, { Error: 'Failed to authenticate', Code: 401 });
      this.logins += 1;
      const token = this.issueToken(this.logins);
      this.tokens.add(token);
      return answer(200, { AccessToken: token, RefreshNonce: `nonce-${this.logins}` });
    }
    const token = /^Bearer (.+)$/.exec(seen.authorization ?? '')?.[1];
    if (!token || !this.tokens.has(token) || this.refuseTokens) return answer(401, { Error: 'Unauthorized', Code: 401 });
    if (seen.method === 'GET' && url.pathname === '/api/v1/backups') {
      return answer(200, this.backups.map((backup) => ({ Backup: backup, Schedule: null, DisplayNames: {} })));
    }
    if (seen.method === 'GET' && url.pathname === '/api/v1/serverstate') {
      if (url.searchParams.get('longpoll') === 'true' && this.holdLongPolls) await this.hold();
      return answer(200, this.state);
    }
    const run = /^\/api\/v1\/backup\/([^/]+)\/run$/.exec(url.pathname);
    if (seen.method === 'POST' && run) {
      if (!this.backups.some((backup) => backup.ID === run[1])) return answer(404, { Error: 'Not found' });
      this.onRun?.(run[1]!);
      if (this.holdRuns) await this.hold();
      if (this.runStatus !== 200) return answer(this.runStatus, { Error: 'Internal server error' });
      return answer(200, { Status: 'OK', ID: 12 });
    }
    const task = /^\/api\/v1\/task\/(\d+)(?:\/(stop|abort))?$/.exec(url.pathname);
    if (task) {
      const state = this.taskStates.get(Number(task[1]));
      if (!state || (task[2] && state.Status !== 'Running' && state.Status !== 'Waiting')) return answer(404, { Error: 'No such task found', Code: 404 });
      if (task[2] && seen.method === 'POST') return answer(200);
      if (seen.method === 'GET' && !task[2]) return answer(200, { ID: Number(task[1]), TaskStarted: null, TaskFinished: null, ErrorMessage: null, Exception: null, ...state });
    }
    if (seen.method === 'GET' && url.pathname === '/api/v1/systeminfo') {
      return answer(200, { APIVersion: 1, ServerVersion: this.version.split('_')[0], ServerVersionName: this.version, ServerVersionType: 'Stable' });
    }
    if (seen.method === 'GET' && url.pathname === '/api/v1/progressstate') {
      if (!this.state.ActiveTask) return answer(404, { Error: 'No active backup', Code: 404 });
      return answer(200, { Phase: 'Backup_ProcessingFiles', OverallProgress: 0.25, ProcessedFileCount: 10, TotalFileCount: 40, ProcessedFileSize: 1048576, TotalFileSize: 4194304 });
    }
    const log = /^\/api\/v1\/backup\/([^/]+)\/log$/.exec(url.pathname);
    if (seen.method === 'GET' && log && this.lockedLogReads > 0) {
      this.lockedLogReads -= 1;
      return answer(400, {
        Error: 'The backup database is currently in use by another operation and cannot be accessed concurrently. Please wait for the running operation to finish and try again.',
        Code: 400,
        HelpId: 'DatabaseLocked',
      });
    }
    if (seen.method === 'GET' && log) {
      const size = Number(url.searchParams.get('pagesize') ?? '100');
      return answer(200, (this.logs.get(log[1]!) ?? []).slice(0, size));
    }
    return answer(404, { Error: `no route ${seen.method} ${url.pathname}` });
  }

  /** A backup that ran: LastBackupFinished moves on and its result is the newest log entry. */
  finishes(id: string, entry: LogEntry): void {
    this.onRun = (ran) => {
      if (ran !== id) return;
      this.backups.find((backup) => backup.ID === id)!.Metadata.LastBackupFinished = '20240301T120000Z';
      this.logs.set(id, [entry, ...(this.logs.get(id) ?? [])]);
    };
  }
}

const servers: FakeDuplicatiServer[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function startServer(): Promise<FakeDuplicatiServer> {
  const server = await new FakeDuplicatiServer().start();
  servers.push(server);
  return server;
}

function driver(url: string, secret = password, runTimeoutMs = 25_000): { duplicati: Duplicati; passwordReads: () => number; clock: FakeClock } {
  let reads = 0;
  const clock = new FakeClock();
  const duplicati = createApiDuplicati({
    url,
    password: () => {
      reads += 1;
      return secret;
    },
    runTimeoutMs,
    clock,
  });
  return { duplicati, passwordReads: () => reads, clock };
}

const isLongPoll = (request: SeenRequest) => request.query.get('longpoll') === 'true';
const isRun = (request: SeenRequest) => request.path.endsWith('/run');

async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

/** Every text of an error a user or a log could see. */
function errorTexts(error: Error): string {
  return [String(error), error.message, error.stack ?? '', (error as CommandError).output ?? '', JSON.stringify(error)].join('\n');
}

describe('createApiDuplicati: signing in', () => {
  it('signs in once with {Password, RememberMe} and reuses the token', async () => {
    const server = await startServer();
    const { duplicati, passwordReads } = driver(server.url);
    expect(passwordReads()).toBe(0);
    await duplicati.status();
    await duplicati.listJobs();
    await duplicati.status();
    expect(server.logins).toBe(1);
    expect(passwordReads()).toBe(1);
    const login = server.requests.find((request) => request.path === '/api/v1/auth/login')!;
    expect(JSON.parse(login.body)).toEqual({ Password: password, RememberMe: true });
    expect(login.authorization).toBeUndefined();
    const others = server.requests.filter((request) => request.path !== '/api/v1/auth/login');
    expect(others.map((request) => request.authorization)).toEqual(['Bearer token-1', 'Bearer token-1', 'Bearer token-1']);
    expect(others.every((request) => request.status === 200)).toBe(true);
  });

  it('a token the server starts refusing (401) makes it sign in again, and the call succeeds', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    await duplicati.status();
    server.tokens.clear();
    server.state.LastEventID = 77;
    const status = await duplicati.status();
    expect(status.eventId).toBe(77);
    expect(server.logins).toBe(2);
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'POST /api/v1/auth/login 200',
      'GET /api/v1/serverstate 200',
      'GET /api/v1/serverstate 401',
      'POST /api/v1/auth/login 200',
      'GET /api/v1/serverstate 200',
    ]);
    expect(server.requests.at(-1)!.authorization).toBe('Bearer token-2');
  });

  it('a server that refuses every token: one new sign-in, then the HTTP 401 is the error (no loop)', async () => {
    const server = await startServer();
    server.refuseTokens = true;
    const { duplicati } = driver(server.url);
    const error = await failureOf(duplicati.status());
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toContain('HTTP 401');
    expect(error.message).toContain(`${server.url}/api/v1/serverstate`);
    expect(server.logins).toBe(2);
    expect(server.calls().filter((call) => call === 'GET /api/v1/serverstate')).toHaveLength(2);
  });

  it('a JWT access token whose exp is near is renewed before use, without a refused request', async () => {
    const server = await startServer();
    const { duplicati, clock } = driver(server.url);
    const now = Math.floor(clock.now() / 1000);
    // First sign-in: a token that expires in 30 s (inside the renewal margin); later: one hour.
    server.issueToken = (login) => fakeJwt(login === 1 ? now + 30 : now + 3600, `login-${login}`);
    await duplicati.status();
    expect(server.logins).toBe(1);
    await duplicati.status();
    expect(server.logins).toBe(2);
    await duplicati.status();
    await duplicati.listJobs();
    expect(server.logins).toBe(2);
    expect(server.requests.every((request) => request.status === 200)).toBe(true);
    const used = server.requests.filter((request) => request.path !== '/api/v1/auth/login').map((request) => request.authorization);
    expect(used[0]).toBe(`Bearer ${fakeJwt(now + 30, 'login-1')}`);
    expect(used.slice(1)).toEqual(Array(3).fill(`Bearer ${fakeJwt(now + 3600, 'login-2')}`));
  });

  it('a token that is not a JWT is kept 14 minutes by the clock, then renewed before use', async () => {
    const server = await startServer();
    const { duplicati, clock } = driver(server.url);
    await duplicati.status();
    clock.advance(13 * 60_000);
    await duplicati.status();
    expect(server.logins).toBe(1);
    clock.advance(60_000);
    await duplicati.status();
    expect(server.logins).toBe(2);
    expect(server.requests.every((request) => request.status === 200)).toBe(true);
  });

  it('a wrong password: an error saying the password was refused, without the password in it', async () => {
    const server = await startServer();
    server.password = 'the-right-one';
    const { duplicati } = driver(server.url);
    const error = await failureOf(duplicati.status());
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toMatch(/refused the password/);
    expect(error.message).toContain(server.url);
    expect(errorTexts(error)).not.toContain(password);
    // Not asked again and again: one sign-in attempt, no state request without a token.
    expect(server.calls()).toEqual(['POST /api/v1/auth/login']);
  });

  it('the password appears in no error message, whatever fails', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const errors = [await failureOf(duplicati.run('ghost'))];
    const broken = driver(`${server.url}/nowhere`);
    errors.push(await failureOf(broken.duplicati.status()));
    const closed = await startServer();
    const closedUrl = closed.url;
    await closed.close();
    errors.push(await failureOf(driver(closedUrl).duplicati.status()));
    server.password = 'changed';
    errors.push(await failureOf(driver(server.url).duplicati.listJobs()));
    expect(errors).toHaveLength(4);
    for (const error of errors) expect(errorTexts(error)).not.toContain(password);
  });

  it('connection refused: a CommandError naming the URL', async () => {
    const closed = await startServer();
    const url = closed.url;
    await closed.close();
    const error = await failureOf(driver(url).duplicati.status());
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toContain(url);
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('a URL with a trailing slash: requests go to /api/v1/... without a double slash', async () => {
    const server = await startServer();
    const { duplicati } = driver(`${server.url}/`);
    await duplicati.status();
    expect(server.calls()).toEqual(['POST /api/v1/auth/login', 'GET /api/v1/serverstate']);
  });
});

describe('createApiDuplicati: jobs', () => {
  it('run by name, case-insensitively: POST backup/<ID>/run; the outcome names the backup and its LastBackupFinished', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const outcome = await duplicati.run('APP');
    expect(server.calls()).toContain('POST /api/v1/backup/1/run');
    expect(server.calls()).not.toContain('POST /api/v1/backup/2/run');
    expect(outcome).toMatchObject({ backupId: '1', backupName: 'app', timedOut: false, task: 12, recordBefore: { LastBackupFinished: '20240101T000000Z' } });
    expect(outcome.output).toContain('Running backup app (ID: 1)');
    expect(outcome.output).toContain('task 12');
  });

  it('prepared (the ID and record read while the stack stopped): run is one request, POST backup/<ID>/run', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const prepared = await duplicati.prepare!('APP');
    expect(prepared).toEqual({ job: 'APP', backupId: '1', backupName: 'app', recordBefore: { LastBackupFinished: '20240101T000000Z' } });
    const before = server.calls().length;
    const outcome = await duplicati.run('APP', undefined, prepared);
    expect(server.calls().slice(before)).toEqual(['POST /api/v1/backup/1/run']);
    expect(outcome).toMatchObject({ backupId: '1', task: 12, recordBefore: { LastBackupFinished: '20240101T000000Z' } });
    expect(outcome.queuedAt).toBeGreaterThanOrEqual(outcome.requestedAt!);
  });

  it('run by ID', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const outcome = await duplicati.run('2');
    expect(server.calls().filter((call) => call.endsWith('/run'))).toEqual(['POST /api/v1/backup/2/run']);
    expect(outcome).toMatchObject({ backupId: '2', backupName: 'Other Job', recordBefore: { LastBackupFinished: '20240102T000000Z' } });
  });

  it('a run request outliving run_timeout: a timedOut outcome naming the backup, to be followed by polling', async () => {
    const server = await startServer();
    server.holdRuns = true;
    const { duplicati, clock } = driver(server.url, password, 200);
    const running = duplicati.run('app');
    await server.arrived(isRun);
    clock.advance(199);
    await new Promise((resolve) => setImmediate(resolve));
    expect(await Promise.race([running.then(() => 'settled'), Promise.resolve('pending')])).toBe('pending');
    clock.advance(1);
    const outcome = await running;
    expect(clock.pendingDeadlines).toBe(0);
    expect(outcome).toMatchObject({ backupId: '1', backupName: 'app', timedOut: true, recordBefore: { LastBackupFinished: '20240101T000000Z' } });
    expect(outcome.output).toContain('Running backup app (ID: 1)');
    expect(server.calls()).toContain('POST /api/v1/backup/1/run');
  });

  it('a run request refused (HTTP 500): a CommandError, not a timed-out run', async () => {
    const server = await startServer();
    server.runStatus = 500;
    const { duplicati } = driver(server.url);
    const error = await failureOf(duplicati.run('app'));
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toContain(`POST ${server.url}/api/v1/backup/1/run: HTTP 500`);
  });

  it('a run ended by the abort signal rejects with its reason, not as a timed-out run', async () => {
    const server = await startServer();
    server.holdRuns = true;
    const { duplicati } = driver(server.url, password, 5000);
    const controller = new AbortController();
    const reason = new AbortedError('SIGTERM');
    server.onRun = () => controller.abort(reason);
    await expect(duplicati.run('app', controller.signal)).rejects.toBe(reason);
  });

  it('an unknown job is an UnknownJobError naming it, and nothing is run', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const error = await failureOf(duplicati.run('ghost'));
    expect(error).toBeInstanceOf(UnknownJobError);
    expect(error.message).toContain('"ghost"');
    expect(server.calls().some((call) => call.endsWith('/run'))).toBe(false);
  });

  it('listJobs lists every backup with its ID, name and record', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    expect(await duplicati.listJobs()).toMatchObject([
      { id: '1', name: 'app', record: { LastBackupFinished: '20240101T000000Z' } },
      { id: '2', name: 'Other Job', record: { LastBackupFinished: '20240102T000000Z' } },
    ]);
  });
});

describe('statusFromServerState', () => {
  it('Running, an active task and a queue, with the event ID', () => {
    expect(
      statusFromServerState({
        ProgramState: 'Running',
        ActiveTask: { Item1: 12, Item2: '1' },
        SchedulerQueueIds: [
          { Item1: 13, Item2: '2' },
          { Item1: 14, Item2: '1' },
        ],
        LastEventID: 41,
      }),
    ).toEqual({
      paused: false,
      active: { task: 12, backupId: '1' },
      queue: [
        { task: 13, backupId: '2' },
        { task: 14, backupId: '1' },
      ],
      eventId: 41,
    });
  });

  it.each([
    ['"Paused"', 'Paused', true],
    ['1 (the enum value of Paused)', 1, true],
    ['"Running"', 'Running', false],
    ['0 (the enum value of Running)', 0, false],
  ])('ProgramState %s', (_title, state, paused) => {
    const status = statusFromServerState({ ProgramState: state, ActiveTask: null, SchedulerQueueIds: null, LastEventID: 3 });
    expect(status).toEqual({ paused, active: undefined, queue: [], eventId: 3 });
  });

  it('status() reads GET serverstate through the same mapping', async () => {
    const server = await startServer();
    server.state = { ProgramState: 'Paused', ActiveTask: { Item1: 20, Item2: '2' }, SchedulerQueueIds: [{ Item1: 21, Item2: '1' }], LastEventID: 9 };
    const { duplicati } = driver(server.url);
    expect(await duplicati.status()).toEqual({ paused: true, active: { task: 20, backupId: '2' }, queue: [{ task: 21, backupId: '1' }], eventId: 9 });
  });
});

describe('createApiDuplicati: waitForChange', () => {
  const since = (eventId: number | undefined) => ({ paused: false, active: undefined, queue: [], ...(eventId === undefined ? {} : { eventId }) });

  it('long-polls serverstate with lastEventId and a duration of at most 30 s, and waits for its answer', async () => {
    const server = await startServer();
    server.holdLongPolls = true;
    const { duplicati } = driver(server.url);
    let answered = false;
    const waiting = duplicati.waitForChange!(since(41), 6 * 3600_000).then(() => void (answered = true));
    await server.arrived(isLongPoll);
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBe(false);
    server.release();
    await waiting;
    expect(answered).toBe(true);
    const poll = server.requests.find(isLongPoll)!;
    expect(poll.path).toBe('/api/v1/serverstate');
    expect(poll.query.get('lastEventId')).toBe('41');
    expect(poll.query.get('duration')).toBe('30s');
    expect(poll.authorization).toBe('Bearer token-1');
  });

  it('its answer is the new server state: the waiter looks at it with no request of its own', async () => {
    const server = await startServer();
    server.state = { ProgramState: 'Running', ActiveTask: null, SchedulerQueueIds: [], LastEventID: 42 };
    const { duplicati } = driver(server.url);
    expect(await duplicati.waitForChange!(since(41), 60_000)).toEqual({ paused: false, active: undefined, queue: [], eventId: 42 });
    expect(server.requests.filter((request) => request.path === '/api/v1/serverstate')).toHaveLength(1);
  });

  it('a token due for renewal before the long-poll would end is renewed before it, not by the call after its answer', async () => {
    const server = await startServer();
    const { duplicati, clock } = driver(server.url);
    await duplicati.status();
    expect(server.logins).toBe(1);
    // 13 min 40 s into a 15-minute token: renewal is due a minute before it lapses, inside a 30 s long-poll.
    clock.advance(13 * 60_000 + 40_000);
    await duplicati.waitForChange!(since(41), 60_000);
    expect(server.logins).toBe(2);
    const calls = server.requests.map((request) => request.path);
    expect(calls.indexOf('/api/v1/auth/login', 1)).toBeLessThan(calls.lastIndexOf('/api/v1/serverstate'));
    await duplicati.status();
    expect(server.logins).toBe(2);
  });

  it('a shorter wait is asked for as the duration, never under 10 s', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    await duplicati.waitForChange!(since(5), 15_000);
    await duplicati.waitForChange!(since(6), 10_000);
    const durations = server.requests.filter((request) => request.query.get('longpoll') === 'true').map((request) => request.query.get('duration'));
    expect(durations).toEqual(['15s', '10s']);
    for (const duration of durations) {
      const seconds = Number(/^(\d+)s$/.exec(duration!)![1]);
      expect(seconds).toBeGreaterThanOrEqual(10);
      expect(seconds).toBeLessThanOrEqual(30);
    }
  });

  it('under 10 s to wait: no long-poll, a pause of at most 1 s on the clock', async () => {
    const server = await startServer();
    const { duplicati, clock } = driver(server.url);
    const started = clock.now();
    await duplicati.waitForChange!(since(41), 9_000);
    expect(clock.now() - started).toBe(1000);
    await duplicati.waitForChange!(since(41), 300);
    expect(clock.now() - started).toBe(1300);
    await duplicati.waitForChange!(since(41), 0);
    expect(clock.now() - started).toBe(1300);
    expect(server.requests).toEqual([]);
  });

  it('without an event ID: no long-poll', async () => {
    const server = await startServer();
    const { duplicati, clock } = driver(server.url);
    const started = clock.now();
    await duplicati.waitForChange!(since(undefined), 60_000);
    expect(clock.now() - started).toBe(1000);
    expect(server.requests).toEqual([]);
  });

  it('a long-poll the server never answers ends at its deadline: the asked duration and the request timeout', async () => {
    const server = await startServer();
    server.holdLongPolls = true;
    const { duplicati, clock } = driver(server.url);
    const waiting = failureOf(duplicati.waitForChange!(since(41), 15_000));
    await server.arrived(isLongPoll);
    clock.advance(15_000 + 30_000 - 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(clock.pendingDeadlines).toBe(1);
    clock.advance(1);
    const error = await waiting;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.message).toBe(`GET ${server.url}/api/v1/serverstate?longpoll=true&lastEventId=41&duration=15s: no answer within 45 s`);
  });

  it('a pause is ended by the abort signal', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const controller = new AbortController();
    const reason = new AbortedError('SIGINT');
    controller.abort(reason);
    await expect(duplicati.waitForChange!(since(undefined), 60_000, controller.signal)).rejects.toBe(reason);
  });
});

describe('createApiDuplicati: result', () => {
  async function runAndJudge(server: FakeDuplicatiServer, job = 'app') {
    const { duplicati } = driver(server.url);
    const outcome = await duplicati.run(job);
    return { outcome, result: await duplicati.result(outcome) };
  }

  it('LastBackupFinished changed and the newest log entry says Success: Success', async () => {
    const server = await startServer();
    server.logs.set('1', [resultEntry(1, 'Error', { Errors: ['old failure'] })]);
    server.finishes('1', resultEntry(2, 'Success'));
    const { result } = await runAndJudge(server);
    expect(result).toEqual({ result: 'Success', message: undefined });
    const logRequest = server.requests.find((request) => request.path === '/api/v1/backup/1/log')!;
    expect(logRequest.query.get('pagesize')).toBe('5');
  });

  it('Warning carries Duplicati\'s warnings', async () => {
    const server = await startServer();
    server.finishes('1', resultEntry(2, 'Warning', { Warnings: ['Failed to read file /data/locked.db'] }));
    const { result } = await runAndJudge(server);
    expect(result.result).toBe('Warning');
    expect(result.message).toContain('Failed to read file /data/locked.db');
  });

  it('Error carries Duplicati\'s errors', async () => {
    const server = await startServer();
    server.finishes('1', resultEntry(2, 'Error', { Errors: ['The remote server returned an error: (403) Forbidden'] }));
    const { result } = await runAndJudge(server);
    expect(result.result).toBe('Error');
    expect(result.message).toContain('(403) Forbidden');
  });

  it('Fatal carries the exception', async () => {
    const server = await startServer();
    server.finishes('1', resultEntry(2, 'Fatal', { Exception: 'System.IO.IOException: No space left on device' }));
    const { result } = await runAndJudge(server);
    expect(result.result).toBe('Fatal');
    expect(result.message).toContain('No space left on device');
  });

  it('LastBackupFinished unchanged, the log shows only an older success: Fatal, "recorded no finished backup"', async () => {
    const server = await startServer();
    server.logs.set('1', [resultEntry(1, 'Success')]);
    const { result } = await runAndJudge(server);
    expect(result.result).toBe('Fatal');
    expect(result.message).toMatch(/recorded no finished backup/);
    expect(result.message).toContain('20240101T000000Z');
  });

  it('LastBackupFinished unchanged, but the log shows an Error: that Error with its words', async () => {
    const server = await startServer();
    server.onRun = () => server.logs.set('1', [resultEntry(5, 'Error', { Errors: ['Found 3 files that are missing from the remote storage'] })]);
    const { result } = await runAndJudge(server);
    expect(result.result).toBe('Error');
    expect(result.message).toContain('missing from the remote storage');
  });

  it('a run without a backup ID: Unknown, nothing asked', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const outcome: JobRun = { backupId: undefined, backupName: undefined, timedOut: true, output: '' };
    expect((await duplicati.result(outcome)).result).toBe('Unknown');
    expect(server.requests).toEqual([]);
  });
});

describe('resultFromLog', () => {
  it('takes the newest (first) entry with a result', () => {
    expect(resultFromLog([resultEntry(3, 'Warning', { Warnings: ['w'] }), resultEntry(2, 'Error', { Errors: ['e'] })])).toEqual({ result: 'Warning', message: 'w' });
  });

  it('skips entries whose Message is not JSON, has no known ParsedResult, or is missing', () => {
    const result = resultFromLog([
      { ID: 9, Type: 'Information', Message: 'Backup started at 01/03/2024 12:00:00' },
      { ID: 8, Type: 'Result', Message: JSON.stringify({ MainOperation: 'Compact', Errors: [] }) },
      { ID: 7, Type: 'Result', Message: JSON.stringify({ ParsedResult: 'Whatever' }) },
      { ID: 6, Type: 'Result' },
      resultEntry(5, 'Error', { Errors: ['disk full'] }),
      resultEntry(4, 'Success'),
    ]);
    expect(result).toEqual({ result: 'Error', message: 'disk full' });
  });

  it('errors, warnings and the exception together, at most five', () => {
    const result = resultFromLog([resultEntry(1, 'Error', { Errors: ['e1', 'e2', 'e3'], Warnings: ['w1', 'w2', 'w3'], Exception: 'boom' })]);
    expect(result.message).toBe('e1; e2; e3; w1; w2');
  });

  it('no result in the page: Unknown', () => {
    expect(resultFromLog([]).result).toBe('Unknown');
    expect(resultFromLog([{ ID: 1, Type: 'Information', Message: 'not json' }]).result).toBe('Unknown');
  });
});

describe('createApiDuplicati: tasks, progress, version, the locked log', () => {
  it('task: GET task/N gives Waiting, Running, Completed, Failed with its message; 404 is Gone', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    server.taskStates.set(12, { Status: 'Running' });
    expect(await duplicati.task!(12)).toEqual({ status: 'Running', errorMessage: undefined });
    server.taskStates.set(12, { Status: 'Failed', ErrorMessage: 'The source folder /source/app does not exist' });
    expect(await duplicati.task!(12)).toEqual({ status: 'Failed', errorMessage: 'The source folder /source/app does not exist' });
    expect(await duplicati.task!(99)).toEqual({ status: 'Gone' });
    server.taskStates.set(12, { Status: 'Completed', TaskStarted: '2026-12-05T10:00:00.250Z', TaskFinished: '2026-12-05T10:00:02.5' });
    expect(await duplicati.task!(12)).toMatchObject({ status: 'Completed', startedAt: Date.parse('2026-12-05T10:00:00.250Z'), finishedAt: Date.parse('2026-12-05T10:00:02.500Z') });
  });

  it('stopTask: POST task/N/stop and task/N/abort; a task that already ended (404) is no error', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    server.taskStates.set(12, { Status: 'Running' });
    await duplicati.stopTask!(12, 'stop');
    await duplicati.stopTask!(12, 'abort');
    await duplicati.stopTask!(13, 'stop');
    expect(server.calls().filter((call) => call.startsWith('POST /api/v1/task'))).toEqual([
      'POST /api/v1/task/12/stop',
      'POST /api/v1/task/12/abort',
      'POST /api/v1/task/13/stop',
    ]);
  });

  it('progress: progressstate while a backup runs, undefined otherwise (404 "No active backup")', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    expect(await duplicati.progress!()).toBeUndefined();
    server.state.ActiveTask = { Item1: 12, Item2: '1' };
    expect(await duplicati.progress!()).toEqual({ phase: 'Backup_ProcessingFiles', overall: 0.25, filesDone: 10, filesTotal: 40, bytesDone: 1048576, bytesTotal: 4194304 });
  });

  it('version: ServerVersionName from systeminfo', async () => {
    const server = await startServer();
    expect(await driver(server.url).duplicati.version()).toBe('2.2.0.3_stable_2025-12-04');
  });

  const ran = (): JobRun => ({ backupId: '1', backupName: 'app', timedOut: false, output: '', recordBefore: { LastBackupFinished: '20240101T000000Z' } });

  it('a locked log (DatabaseLockedException) is read again, and its result is judged', async () => {
    const server = await startServer();
    server.finishes('1', resultEntry(7, 'Warning', { Warnings: ['file changed'] }));
    server.onRun!('1');
    server.lockedLogReads = 2;
    const { duplicati, clock } = driver(server.url);
    const started = clock.now();
    expect(await duplicati.result(ran())).toEqual({ result: 'Warning', message: 'file changed' });
    expect(server.calls().filter((call) => call.endsWith('/log'))).toHaveLength(3);
    // Half a second between reads, on the clock.
    expect(clock.now() - started).toBe(1000);
  });

  it('a log locked for good: the error after a bounded number of reads', async () => {
    const server = await startServer();
    server.finishes('1', resultEntry(7, 'Success'));
    server.onRun!('1');
    server.lockedLogReads = 1000;
    const error = await failureOf(driver(server.url).duplicati.result(ran()));
    expect(error.message).toMatch(/HTTP 400/);
    expect(server.calls().filter((call) => call.endsWith('/log')).length).toBeLessThanOrEqual(10);
  });

  it('a Failed task is Fatal with its error message, whatever the log says', async () => {
    const server = await startServer();
    const { duplicati } = driver(server.url);
    const result = await duplicati.result({ ...ran(), taskEnd: { status: 'Failed', errorMessage: 'Wrong passphrase' } });
    expect(result).toEqual({ result: 'Fatal', message: 'Wrong passphrase' });
  });
});
