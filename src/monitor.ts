/**
 * Tells the monitoring people already use about every stack's run: Healthchecks-style pings
 * (URL/start, URL, URL/fail with the log tail) and a JSON webhook (ntfy, generic). Each request
 * is short and retried a little; a monitoring failure is logged and never fails or delays a
 * backup: the start ping is not waited for, and the end reports are sent after the stack is back.
 */
import os from 'node:os';
import type { HttpRequest, HttpSend } from './adapters/http.js';
import type { MonitorSettings } from './config/types.js';
import type { StackResult } from './orchestrator.js';

export interface MonitorOptions {
  timeoutMs: number;
  attempts: number;
  retryDelayMs: number;
}

export const defaultMonitorOptions: MonitorOptions = { timeoutMs: 5000, attempts: 3, retryDelayMs: 1000 };

/** At most this much of the log goes with a /fail ping (Healthchecks keeps 100 kB). */
const bodyLimit = 10_000;

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

const join = (base: string, suffix: string) => `${base.replace(/\/+$/, '')}/${suffix}`;

export function webhookBody(stack: string, result: StackResult, now: Date): string {
  return JSON.stringify({
    stack,
    host: os.hostname(),
    time: now.toISOString(),
    result: result.ok ? 'success' : 'failed',
    outcome: result.outcome,
    downtime_seconds: result.downtimeMs === undefined ? null : result.downtimeMs / 1000,
    duration_seconds: result.backupMs === undefined ? null : result.backupMs / 1000,
    error: [result.error, ...result.restoreErrors].filter(Boolean).join('; ') || null,
    log_file: result.logFile,
  });
}

export function createStackMonitor(stack: string, settings: MonitorSettings, send: HttpSend, options = defaultMonitorOptions): StackMonitor {
  let startPing: Promise<string | undefined> = Promise.resolve(undefined);
  const request = (method: HttpRequest['method'], url: string, body?: string, contentType?: string): HttpRequest => ({
    method,
    url,
    timeoutMs: options.timeoutMs,
    ...(body === undefined ? {} : { body, contentType: contentType ?? 'text/plain; charset=utf-8' }),
  });
  return {
    started() {
      if (settings.healthchecks) startPing = deliver(send, request('GET', join(settings.healthchecks, 'start')), options);
    },
    async finished(result, logTail) {
      const deliveries: Array<Promise<string | undefined>> = [startPing];
      if (settings.healthchecks) {
        const labels = { success: 'backed up', warning: 'backed up, warnings', unknown: 'ran, outcome unknown', failed: 'FAILED' };
        const summary = result.ok
          ? `${stack}: ${labels[result.outcome]}`
          : `${stack}: FAILED: ${[result.error, ...result.restoreErrors].filter(Boolean).join('; ')}`.slice(0, bodyLimit / 2);
        // The summary first, then as much of the end of the log as fits.
        const body = `${summary}\n\n${logTail.slice(-(bodyLimit - summary.length - 2))}`;
        deliveries.push(deliver(send, request('POST', result.ok ? settings.healthchecks : join(settings.healthchecks, 'fail'), body), options));
      }
      if (settings.webhook) {
        deliveries.push(deliver(send, request('POST', settings.webhook, webhookBody(stack, result, new Date()), 'application/json'), options));
      }
      const failures = (await Promise.all(deliveries)).filter((failure): failure is string => failure !== undefined);
      return { failures };
    },
  };
}
