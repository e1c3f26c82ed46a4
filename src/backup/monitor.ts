/**
 * Tells the monitoring people already use about every stack's run: Healthchecks pings
 * (URL/start, then URL/0 or URL/1 with the log tail, paired by a run ID), an Uptime Kuma push,
 * an ntfy notification and a JSON webhook. Each request
 * is short and retried a little; a monitoring failure is logged and never fails or delays a
 * backup: the start ping is not waited for, and the end reports are sent after the stack is back.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { HttpRequest, HttpSend } from '../adapters/http.js';
import type { MonitorSettings } from '../config/types.js';
import type { StackResult } from './orchestrator.js';
import { formatSeconds } from '../format.js';

export interface MonitorOptions {
  timeoutMs: number;
  attempts: number;
  retryDelayMs: number;
}

export const defaultMonitorOptions: MonitorOptions = { timeoutMs: 5000, attempts: 3, retryDelayMs: 1000 };

/**
 * At most this many bytes go with the end ping: Healthchecks keeps the first 100 kB (100000
 * bytes) of a ping's body (https://healthchecks.io/docs/attaching_logs/).
 */
export const bodyLimit = 100_000;

export interface MonitorReport {
  /** Where something could not be delivered, for the log. */
  failures: string[];
}

export interface StackMonitor {
  /** Sends the start ping in the background; never throws. */
  started(): void;
  /** Sends the end reports and resolves once they are delivered or given up; never throws. */
  finished(result: StackResult, logTail: string): Promise<MonitorReport>;
}

/** Strips credentials from a URL before it is logged. */
function shown(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}

async function deliver(send: HttpSend, request: HttpRequest, options: MonitorOptions): Promise<string | undefined> {
  let problem = '';
  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    try {
      const status = await send(request);
      if (status >= 200 && status < 300) return undefined;
      problem = `HTTP ${status}`;
      // A client error will not get better by asking again.
      if (status >= 400 && status < 500) break;
    } catch (error) {
      problem = (error as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs / 1000} s` : (error as Error).message;
    }
    if (attempt < options.attempts) await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs));
  }
  return `${request.method} ${shown(request.url)}: ${problem}`;
}

/** URL/suffix, keeping a query the user's URL has (a slug URL's ?create=1), with extra parameters. */
function withPath(base: string, suffix: string, parameters: Record<string, string> = {}): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${suffix}`;
  for (const [key, value] of Object.entries(parameters)) url.searchParams.set(key, value);
  return url.toString();
}

/** The base URL with these query parameters set (an Uptime Kuma push URL comes with status=up&msg=OK&ping=). */
function withQuery(base: string, parameters: Record<string, string>): string {
  const url = new URL(base);
  for (const [key, value] of Object.entries(parameters)) url.searchParams.set(key, value);
  return url.toString();
}

/** The last `limit` bytes of the text, whole characters only. */
function lastBytes(text: string, limit: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limit) return text;
  // Dropping the bytes of a character cut at the start: continuation bytes are 10xxxxxx.
  let start = bytes.length - limit;
  while (start < bytes.length && (bytes[start]! & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString('utf8');
}

const labels = { success: 'backed up', warning: 'backed up, warnings', completed: 'completed, result not seen', unknown: 'ran, outcome unknown', failed: 'FAILED' } as const;

/** One line: the stack and its result, with the errors when it failed. */
export function summaryLine(stack: string, result: StackResult): string {
  if (result.ok) return `${stack}: ${labels[result.outcome]}`;
  const label = result.notRestored ? 'FAILED, NOT RESTORED' : 'FAILED';
  return `${stack}: ${label}: ${[result.error, ...result.restoreErrors].filter(Boolean).join('; ')}`;
}

/** The mode, the downtime and the backup time apart: in snapshot mode they differ by the whole job. */
export function timesLine(result: StackResult): string {
  return [
    `${result.mode ?? 'stop'} mode`,
    `down ${formatSeconds(result.downtimeMs)}`,
    `backup ${formatSeconds(result.backupMs)}`,
    ...(result.mode === 'snapshot' ? [`snapshots ${formatSeconds(result.snapshotMs)}`] : []),
  ].join(', ');
}

/** The restore test's verdict, where one was due: its first line, and each file that differed. */
export function restoreTestLines(result: StackResult): string[] {
  return result.restoreTest ? result.restoreTest.lines : [];
}

/** The restore test for a JSON reader: null when none ran (none configured, not due, or the backup failed before it). */
export function restoreTestJson(result: StackResult) {
  const test = result.restoreTest;
  if (!test) return null;
  return {
    passed: test.passed,
    skipped: test.skipped ?? null,
    files: test.tested,
    identical: test.identical,
    mismatches: test.mismatches,
    bytes: test.bytes,
    seconds: test.ms / 1000,
    source_files: test.sourceFiles ?? null,
    version_files: test.versionFiles ?? null,
    lines: test.lines,
  };
}

/** The Healthchecks end ping's body: the summary first, then as much of the end of the log as fits. */
export function healthchecksBody(stack: string, result: StackResult, logTail: string): string {
  const summary = lastBytes([summaryLine(stack, result), timesLine(result), ...restoreTestLines(result)].join('\n'), bodyLimit / 2);
  const room = bodyLimit - Buffer.byteLength(summary, 'utf8') - 2;
  return `${summary}\n\n${lastBytes(logTail, room)}`;
}

/** ntfy's headers by result (https://docs.ntfy.sh/publish/: Title, Priority 1-5, Tags as emoji short codes). */
export function ntfyHeaders(stack: string, result: StackResult): Record<string, string> {
  // Header values must be ASCII (ISO-8859-1 at most): anything else is replaced.
  const ascii = (text: string) => text.replace(/[^\x20-\x7e]/g, '?');
  if (!result.ok) {
    return {
      Title: ascii(`stack-backup: ${stack} ${result.notRestored ? 'FAILED, NOT RESTORED' : 'FAILED'} on ${os.hostname()}`),
      Priority: result.notRestored ? '5' : '4',
      Tags: result.notRestored ? 'rotating_light,stack-backup' : 'x,stack-backup',
    };
  }
  const tags = { success: 'white_check_mark', warning: 'warning', completed: 'heavy_check_mark', unknown: 'grey_question', failed: 'x' } as const;
  return {
    Title: ascii(`stack-backup: ${stack} ${labels[result.outcome]} on ${os.hostname()}`),
    Priority: result.outcome === 'warning' ? '3' : '2',
    Tags: `${tags[result.outcome]},stack-backup`,
  };
}

/** Uptime Kuma's push: status up|down, msg the result, ping the downtime in ms (its "response time"). */
export function uptimeKumaUrl(base: string, stack: string, result: StackResult): string {
  return withQuery(base, {
    status: result.ok ? 'up' : 'down',
    msg: summaryLine(stack, result).slice(0, 250),
    ping: result.downtimeMs === undefined ? '' : String(Math.round(result.downtimeMs)),
  });
}

export function webhookBody(stack: string, result: StackResult, now: Date): string {
  return JSON.stringify({
    stack,
    host: os.hostname(),
    time: now.toISOString(),
    result: result.ok ? 'success' : 'failed',
    outcome: result.outcome,
    mode: result.mode ?? 'stop',
    downtime_seconds: result.downtimeMs === undefined ? null : result.downtimeMs / 1000,
    duration_seconds: result.backupMs === undefined ? null : result.backupMs / 1000,
    snapshot_seconds: result.snapshotMs === undefined ? null : result.snapshotMs / 1000,
    snapshots_left: result.snapshotsLeft ?? [],
    restore_test: restoreTestJson(result),
    error: [result.error, ...result.restoreErrors].filter(Boolean).join('; ') || null,
    log_file: result.logFile,
  });
}

export function createStackMonitor(stack: string, settings: MonitorSettings, send: HttpSend, options = defaultMonitorOptions): StackMonitor {
  let startPing: Promise<string | undefined> = Promise.resolve(undefined);
  // One run ID for the start and the end ping, so Healthchecks pairs them even when runs overlap.
  const rid = randomUUID();
  const request = (
    method: HttpRequest['method'],
    url: string,
    body?: string,
    contentType?: string,
    headers?: Record<string, string>,
  ): HttpRequest => ({
    method,
    url,
    timeoutMs: options.timeoutMs,
    ...(body === undefined ? {} : { body, contentType: contentType ?? 'text/plain; charset=utf-8' }),
    ...(headers ? { headers } : {}),
  });
  return {
    started() {
      if (settings.healthchecks) startPing = deliver(send, request('GET', withPath(settings.healthchecks, 'start', { rid })), options);
    },
    async finished(result, logTail) {
      const deliveries: Array<Promise<string | undefined>> = [startPing];
      if (settings.healthchecks) {
        // The stack's own result as the exit status: URL/0 success, URL/1 failure.
        const url = withPath(settings.healthchecks, result.ok ? '0' : '1', { rid });
        deliveries.push(deliver(send, request('POST', url, healthchecksBody(stack, result, logTail)), options));
      }
      if (settings.uptimeKuma) deliveries.push(deliver(send, request('GET', uptimeKumaUrl(settings.uptimeKuma, stack, result)), options));
      if (settings.ntfy) {
        const text = [summaryLine(stack, result), timesLine(result), ...restoreTestLines(result), `log: ${result.logFile}`].join('\n');
        deliveries.push(deliver(send, request('POST', settings.ntfy, text, undefined, ntfyHeaders(stack, result)), options));
      }
      if (settings.webhook) {
        deliveries.push(deliver(send, request('POST', settings.webhook, webhookBody(stack, result, new Date()), 'application/json'), options));
      }
      const failures = (await Promise.all(deliveries)).filter((failure): failure is string => failure !== undefined);
      return { failures };
    },
  };
}
