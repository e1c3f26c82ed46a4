/**
 * The per-stack log: JSON lines (pino) appended to logs/backup-<stack>-YYYY-MM-DD.log, one
 * line per step start and end with its duration and outcome, and the output of what failed.
 * Steps also show on stderr through Progress.
 */
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { Clock } from './adapters/clock.js';
import type { Progress } from './report.js';

export interface StepHandle {
  done(fields?: Record<string, unknown>): void;
  failed(error: Error, fields?: Record<string, unknown>): void;
}

export interface StackLog {
  /** Starts a step: a log line now, another when it ends, and the progress line meanwhile. */
  step(name: string, fields?: Record<string, unknown>): StepHandle;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  readonly file: string;
  close(): void;
}

/** Local calendar date, as a person reading the logs folder expects. */
export function localDate(ms: number): string {
  const date = new Date(ms);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export function stackLogFile(root: string, stack: string, ms: number): string {
  return path.join(root, 'logs', `backup-${stack}-${localDate(ms)}.log`);
}

export function createStackLog(root: string, stack: string, runId: string, clock: Clock, progress: Progress): StackLog {
  const file = stackLogFile(root, stack, clock.now());
  const destination = pino.destination({ dest: file, append: true, mkdir: true, sync: true });
  const logger: Logger = pino({ base: { stack, run: runId }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  return {
    file,
    step(name, fields) {
      const started = clock.now();
      logger.info({ step: name, event: 'start', ...fields }, `${name}: start`);
      const end = progress.begin(stack, name);
      return {
        done(extra) {
          end('done');
          logger.info({ step: name, event: 'end', outcome: 'done', duration_ms: clock.now() - started, ...extra }, `${name}: done`);
        },
        failed(error, extra) {
          end('failed');
          const output = (error as { output?: string }).output;
          logger.error(
            { step: name, event: 'end', outcome: 'failed', duration_ms: clock.now() - started, error: error.message, ...(output ? { output } : {}), ...extra },
            `${name}: failed: ${error.message}`,
          );
        },
      };
    },
    info(message, fields) {
      logger.info(fields ?? {}, message);
      progress.debug?.(`[${stack}] ${message}${fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ''}`);
    },
    warn(message, fields) {
      logger.warn(fields ?? {}, message);
      progress.message(`[${stack}] warning: ${message}`);
    },
    error(message, fields) {
      logger.error(fields ?? {}, message);
      progress.message(`[${stack}] error: ${message}`);
    },
    close() {
      destination.flushSync();
      destination.end();
    },
  };
}
