/**
 * src/backup/monitor.ts: the Healthchecks-style pings and the JSON webhook each stack's run sends,
 * through a fake HttpSend that records every request and answers as told. And, through
 * runBackups, that monitoring never delays a stack and that undelivered reports are logged.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HttpRequest, HttpSend } from '../../src/adapters/http.js';
import type { MonitorSettings } from '../../src/config/types.js';
import { createStackMonitor, defaultMonitorOptions } from '../../src/backup/monitor.js';
import type { StackResult } from '../../src/backup/orchestrator.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { globalConfig, removeTempRoots, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

/** The default options, without the real second between attempts. */
const quick = { ...defaultMonitorOptions, retryDelayMs: 1 };

const hc = 'https://hc.example.com/ping/5f1e';
const webhook = 'https://ntfy.example.com/backups';

type Answer = number | Error | (() => Promise<number>);

/** A URL without its query: the run ID (?rid=) is new for every monitor. */
const bare = (url: string) => url.replace(/\?.*$/, '');

/** The run ID a request carried. */
const ridOf = (request: HttpRequest) => new URL(request.url).searchParams.get('rid');

/** An HttpSend that records requests and answers from `answers` (by URL without its query), else 200. */
function recorder(answers: Record<string, Answer[]> = {}): { send: HttpSend; requests: HttpRequest[]; attempts: (url: string) => number } {
  const requests: HttpRequest[] = [];
  const send: HttpSend = async (request) => {
    requests.push(request);
    const answer = answers[bare(request.url)]?.shift() ?? 200;
    if (answer instanceof Error) throw answer;
    if (typeof answer === 'function') return answer();
    return answer;
  };
  return { send, requests, attempts: (url) => requests.filter((request) => bare(request.url) === url).length };
}

function stackResult(overrides: Partial<StackResult> = {}): StackResult {
  return {
    stack: 'app',
    ok: true,
    error: undefined,
    restoreErrors: [],
    notRestored: false,
    aborted: false,
    outcome: 'success',
    downtimeMs: 12_500,
    backupMs: 3000,
    logFile: '/srv/stack-backup/logs/backup-app-2024-03-01.log',
    ...overrides,
  };
}

const settings = (overrides: Partial<MonitorSettings> = {}): MonitorSettings => ({ healthchecks: undefined, webhook: undefined, ...overrides });

function networkError(): Error {
  return new TypeError('fetch failed');
}

describe('healthchecks pings', () => {
  it('started() sends GET <url>/start?rid=RUN and returns at once, not waiting for the answer', async () => {
    let answer!: (status: number) => void;
    const pending = new Promise<number>((resolve) => (answer = resolve));
    const { send, requests } = recorder({ [`${hc}/start`]: [() => pending] });
    const monitor = createStackMonitor('app', settings({ healthchecks: hc }), send, quick);
    const returned: unknown = monitor.started();
    expect(returned).toBeUndefined();
    expect(requests).toHaveLength(1);
    expect(requests[0]).toEqual({ method: 'GET', url: `${hc}/start?rid=${ridOf(requests[0]!)}`, timeoutMs: quick.timeoutMs });
    expect(ridOf(requests[0]!)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    // finished() waits for the start ping before it resolves.
    let done = false;
    const finished = monitor.finished(stackResult(), '').then((report) => {
      done = true;
      return report;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(done).toBe(false);
    answer(200);
    expect((await finished).failures).toEqual([]);
  });

  it('success: POST <url>/0 with the same run ID as the start, a summary and the log tail', async () => {
    const { send, requests } = recorder();
    const monitor = createStackMonitor('app', settings({ healthchecks: hc }), send, quick);
    monitor.started();
    const report = await monitor.finished(stackResult(), 'line one\nline two');
    expect(report.failures).toEqual([]);
    expect(requests.map((request) => `${request.method} ${bare(request.url)}`)).toEqual([`GET ${hc}/start`, `POST ${hc}/0`]);
    expect(ridOf(requests[1]!)).toBe(ridOf(requests[0]!));
    expect(requests[1]!.body).toBe('app: backed up\nstop mode, down 13 s, backup 3.0 s\n\nline one\nline two');
    expect(requests[1]!.contentType).toMatch(/^text\/plain/);
    expect(requests[1]!.timeoutMs).toBe(quick.timeoutMs);
  });

  it('two runs of one stack at once: each pairs its start and end by its own run ID', async () => {
    const { send, requests } = recorder();
    const first = createStackMonitor('app', settings({ healthchecks: hc }), send, quick);
    const second = createStackMonitor('app', settings({ healthchecks: hc }), send, quick);
    first.started();
    second.started();
    await second.finished(stackResult({ ok: false, outcome: 'failed', error: 'x' }), '');
    await first.finished(stackResult(), '');
    const [start1, start2, end2, end1] = requests;
    expect(ridOf(start1!)).not.toBe(ridOf(start2!));
    expect([bare(end2!.url), ridOf(end2!)]).toEqual([`${hc}/1`, ridOf(start2!)]);
    expect([bare(end1!.url), ridOf(end1!)]).toEqual([`${hc}/0`, ridOf(start1!)]);
  });

  it('success with the outcome unknown says so', async () => {
    const { send, requests } = recorder();
    await createStackMonitor('app', settings({ healthchecks: hc }), send, quick).finished(stackResult({ outcome: 'unknown' }), 'tail');
    expect(bare(requests[0]!.url)).toBe(`${hc}/0`);
    expect(requests[0]!.body).toBe('app: ran, outcome unknown\nstop mode, down 13 s, backup 3.0 s\n\ntail');
  });

  it('failure: POST <url>/1 with the error, the restore errors and the log tail', async () => {
    const { send, requests } = recorder();
    const result = stackResult({ ok: false, outcome: 'failed', error: 'Duplicati reports Error for job app: disk full', restoreErrors: ['post_start hook failed'] });
    await createStackMonitor('app', settings({ healthchecks: hc }), send, quick).finished(result, 'the tail');
    expect(requests.map((request) => `${request.method} ${bare(request.url)}`)).toEqual([`POST ${hc}/1`]);
    expect(requests[0]!.body).toBe('app: FAILED: Duplicati reports Error for job app: disk full; post_start hook failed\nstop mode, down 13 s, backup 3.0 s\n\nthe tail');
  });

  it('a trailing slash on the URL: /start and /1 without a double slash; a query of the URL is kept', async () => {
    const { send, requests } = recorder();
    const monitor = createStackMonitor('app', settings({ healthchecks: `${hc}/` }), send, quick);
    monitor.started();
    await monitor.finished(stackResult({ ok: false, outcome: 'failed', error: 'x' }), '');
    expect(requests.map((request) => bare(request.url))).toEqual([`${hc}/start`, `${hc}/1`]);
    const slug = 'https://hc-ping.com/PINGKEY/db-backup?create=1';
    const { send: send2, requests: requests2 } = recorder();
    await createStackMonitor('app', settings({ healthchecks: slug }), send2, quick).finished(stackResult(), '');
    expect(requests2[0]!.url).toBe(`https://hc-ping.com/PINGKEY/db-backup/0?create=1&rid=${ridOf(requests2[0]!)}`);
  });

  it('the body is at most 100 000 bytes: the summary first, then the end of the log', async () => {
    const { send, requests } = recorder();
    // Multi-byte characters, so a cut by characters would be too long.
    const tail = `${'première ligne '.repeat(10_000)}THE LAST LINE`;
    await createStackMonitor('app', settings({ healthchecks: hc }), send, quick).finished(stackResult({ ok: false, outcome: 'failed', error: 'x' }), tail);
    const body = requests[0]!.body!;
    expect(Buffer.byteLength(body, 'utf8')).toBeLessThanOrEqual(100_000);
    expect(Buffer.byteLength(body, 'utf8')).toBeGreaterThan(99_990);
    expect(body.startsWith('app: FAILED: x\nstop mode, down 13 s, backup 3.0 s\n\n')).toBe(true);
    expect(body.endsWith('THE LAST LINE')).toBe(true);
    expect(body).not.toContain('\ufffd');
    expect(tail.endsWith(body.slice('app: FAILED: x\nstop mode, down 13 s, backup 3.0 s\n\n'.length))).toBe(true);
  });

  it('nothing is sent without settings', async () => {
    const { send, requests } = recorder();
    const monitor = createStackMonitor('app', settings(), send, quick);
    monitor.started();
    expect(await monitor.finished(stackResult(), 'tail')).toEqual({ failures: [] });
    expect(requests).toEqual([]);
  });
});

describe('uptime kuma and ntfy', () => {
  const kuma = 'https://kuma.example.com/api/push/T0KEN?status=up&msg=OK&ping=';
  const ntfy = 'https://ntfy.example.com/backups';

  it('uptime_kuma: GET the push URL with status=up, msg the result and ping the downtime in ms', async () => {
    const { send, requests } = recorder();
    await createStackMonitor('app', settings({ uptimeKuma: kuma }), send, quick).finished(stackResult({ downtimeMs: 12_499.6 }), 'tail');
    expect(requests).toHaveLength(1);
    expect(requests[0]!.method).toBe('GET');
    const url = new URL(requests[0]!.url);
    expect(`${url.origin}${url.pathname}`).toBe('https://kuma.example.com/api/push/T0KEN');
    expect(Object.fromEntries(url.searchParams)).toEqual({ status: 'up', msg: 'app: backed up', ping: '12500' });
  });

  it('uptime_kuma: a failure is status=down with the error; no downtime, an empty ping', async () => {
    const { send, requests } = recorder();
    const result = stackResult({ ok: false, outcome: 'failed', error: 'stop unit: timed out', downtimeMs: undefined });
    await createStackMonitor('app', settings({ uptimeKuma: kuma }), send, quick).finished(result, '');
    expect(Object.fromEntries(new URL(requests[0]!.url).searchParams)).toEqual({ status: 'down', msg: 'app: FAILED: stop unit: timed out', ping: '' });
  });

  it.each([
    ['backed up', stackResult(), '2', 'white_check_mark,stack-backup', 'app backed up'],
    ['warnings', stackResult({ outcome: 'warning' }), '3', 'warning,stack-backup', 'app backed up, warnings'],
    ['outcome unknown', stackResult({ outcome: 'unknown' }), '2', 'grey_question,stack-backup', 'app ran, outcome unknown'],
    ['failed', stackResult({ ok: false, outcome: 'failed', error: 'x' }), '4', 'x,stack-backup', 'app FAILED'],
    ['not restored', stackResult({ ok: false, outcome: 'failed', error: 'x', notRestored: true }), '5', 'rotating_light,stack-backup', 'app FAILED, NOT RESTORED'],
  ] as Array<[string, StackResult, string, string, string]>)('ntfy, %s: title, priority and tags by result, the summary as text', async (_title, result, priority, tags, title) => {
    const { send, requests } = recorder();
    await createStackMonitor('app', settings({ ntfy }), send, quick).finished(result, 'tail');
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ method: 'POST', url: ntfy, headers: { Title: `stack-backup: ${title} on ${os.hostname()}`, Priority: priority, Tags: tags } });
    expect(requests[0]!.body).toBe(`${title.startsWith('app FAILED') ? `app: ${title.slice(4)}: x` : `app: ${title.slice(4)}`}\nstop mode, down 13 s, backup 3.0 s\nlog: ${result.logFile}`);
  });
});

describe('webhook', () => {
  it('POSTs JSON with stack, host, time, result, outcome, downtime, duration, error, log file', async () => {
    const { send, requests } = recorder();
    const before = Date.now();
    const result = stackResult({ ok: false, outcome: 'failed', error: 'stop unit: timed out', restoreErrors: ['restore unit: start failed'], downtimeMs: 12_500, backupMs: 3000 });
    await createStackMonitor('app', settings({ webhook }), send, quick).finished(result, 'tail');
    const after = Date.now();
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ method: 'POST', url: webhook, contentType: 'application/json' });
    const body = JSON.parse(requests[0]!.body!) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['downtime_seconds', 'duration_seconds', 'error', 'host', 'log_file', 'mode', 'outcome', 'result', 'snapshot_seconds', 'snapshots_left', 'restore_test', 'stack', 'time'].sort());
    expect(body).toMatchObject({
      stack: 'app',
      host: os.hostname(),
      result: 'failed',
      outcome: 'failed',
      mode: 'stop',
      downtime_seconds: 12.5,
      duration_seconds: 3,
      snapshot_seconds: null,
      error: 'stop unit: timed out; restore unit: start failed',
      log_file: '/srv/stack-backup/logs/backup-app-2024-03-01.log',
    });
    const time = Date.parse(body.time as string);
    expect(body.time).toBe(new Date(time).toISOString());
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(after);
  });

  it('a success: result success, error null; unknown durations are null', async () => {
    const { send, requests } = recorder();
    await createStackMonitor('app', settings({ webhook }), send, quick).finished(stackResult({ outcome: 'warning', downtimeMs: undefined, backupMs: undefined }), '');
    const body = JSON.parse(requests[0]!.body!) as Record<string, unknown>;
    expect(body).toMatchObject({ result: 'success', outcome: 'warning', error: null, downtime_seconds: null, duration_seconds: null });
  });

  it('healthchecks and webhook together: both sent', async () => {
    const { send, requests } = recorder();
    const monitor = createStackMonitor('app', settings({ healthchecks: hc, webhook }), send, quick);
    monitor.started();
    await monitor.finished(stackResult(), '');
    expect(requests.map((request) => `${request.method} ${bare(request.url)}`).sort()).toEqual([`GET ${hc}/start`, `POST ${hc}/0`, `POST ${webhook}`].sort());
  });
});

describe('delivery: retries and failures', () => {
  it.each([
    ['HTTP 503', [503, 503, 503], /HTTP 503/],
    ['a network error', [networkError(), networkError(), networkError()], /fetch failed/],
    ['no answer in time', [Object.assign(new Error('aborted'), { name: 'TimeoutError' }), networkError(), Object.assign(new Error('aborted'), { name: 'TimeoutError' })], /no answer within 5 s/],
  ] as Array<[string, Answer[], RegExp]>)('%s: three attempts, then a failure naming the request', async (_title, answers, problem) => {
    const { send, attempts } = recorder({ [webhook]: answers });
    const report = await createStackMonitor('app', settings({ webhook }), send, quick).finished(stackResult(), '');
    expect(attempts(webhook)).toBe(3);
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]).toContain(`POST ${webhook}`);
    expect(report.failures[0]).toMatch(problem);
  });

  it('a 5xx then a success: delivered on the retry, no failure', async () => {
    const { send, attempts } = recorder({ [`${hc}/0`]: [502, networkError(), 200] });
    const report = await createStackMonitor('app', settings({ healthchecks: hc }), send, quick).finished(stackResult(), '');
    expect(attempts(`${hc}/0`)).toBe(3);
    expect(report.failures).toEqual([]);
  });

  it.each([400, 404, 410])('HTTP %i: one attempt only', async (status) => {
    const { send, attempts } = recorder({ [`${hc}/1`]: [status, 200, 200] });
    const report = await createStackMonitor('app', settings({ healthchecks: hc }), send, quick).finished(stackResult({ ok: false, outcome: 'failed', error: 'x' }), '');
    expect(attempts(`${hc}/1`)).toBe(1);
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]).toMatch(new RegExp(`^POST ${hc}/1\\?rid=[0-9a-f-]{36}: HTTP ${status}$`));
  });

  it('a failed start ping is reported by finished()', async () => {
    const { send } = recorder({ [`${hc}/start`]: [500, 500, 500] });
    const monitor = createStackMonitor('app', settings({ healthchecks: hc }), send, quick);
    monitor.started();
    const report = await monitor.finished(stackResult(), '');
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]).toMatch(new RegExp(`^GET ${hc}/start\\?rid=[0-9a-f-]{36}: HTTP 500$`));
  });

  it('credentials in the URL are not in the failure text', async () => {
    const secretUrl = 'http://alice:s3cr3t-pass@hooks.example.com/x';
    const { send } = recorder({ [secretUrl]: [500, 500, 500] });
    const report = await createStackMonitor('app', settings({ webhook: secretUrl }), send, quick).finished(stackResult(), '');
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]).toContain('http://hooks.example.com/x');
    expect(report.failures[0]).not.toContain('s3cr3t-pass');
    expect(report.failures[0]).not.toContain('alice');
  });

  it('finished never throws, even when send throws at once', async () => {
    const send: HttpSend = () => {
      throw new Error('send blew up');
    };
    const monitor = createStackMonitor('app', settings({ healthchecks: hc, webhook }), send, quick);
    expect(() => monitor.started()).not.toThrow();
    const report = await monitor.finished(stackResult({ ok: false, outcome: 'failed', error: 'x' }), 'tail');
    expect(report.failures).toHaveLength(3);
    for (const failure of report.failures) expect(failure).toContain('send blew up');
  });
});

describe('monitoring in a run (runBackups)', () => {
  it('the start ping does not hold up the stack, and an undelivered report is logged', async () => {
    const root = tempRoot({ 'stacks/app.yaml': 'duplicati_jobs: [app]\n' });
    const world = worldWithStack('active');
    let answerStart!: (status: number) => void;
    const startAnswered = new Promise<number>((resolve) => (answerStart = resolve));
    const { send, requests } = recorder({ [`${hc}/start`]: [() => startAnswered], [`${hc}/0`]: [404] });
    let stackBackBeforeStartAnswer = false;
    world.onAction = (action) => {
      if (action === 'start app-stack.service') {
        stackBackBeforeStartAnswer = true;
        answerStart(200);
      }
    };
    const report = await runBackups({
      global: globalConfig({ root, file: path.join(root, 'stack-backup.yaml') }),
      sendHttp: send,
      stacks: [stackConfig({ file: path.join(root, 'stacks/app.yaml'), monitor: { healthchecks: hc, webhook: undefined } })],
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    });
    expect(stackBackBeforeStartAnswer).toBe(true);
    expect(report.results[0]!.ok).toBe(true);
    expect(requests.map((request) => `${request.method} ${bare(request.url)}`)).toEqual([`GET ${hc}/start`, `POST ${hc}/0`]);
    expect(requests[1]!.body).toMatch(/^app: backed up\nstop mode, down [^\n]+\n\n/);
    const log = readFileSync(report.results[0]!.logFile, 'utf8');
    expect(log).toContain(`monitoring report not delivered: POST ${hc}/0?rid=${ridOf(requests[1]!)}: HTTP 404`);
  });
});
