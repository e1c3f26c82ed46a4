/**
 * The per-stack log: JSON lines (pino) appended to logs/backup-<stack>-YYYY-MM-DD.log, one
 * line per step start and end with its duration and outcome, and the output of what failed.
 * Steps also show on stderr through Progress.
 *
 * The log is written while a stack is being restored, so writing it can never throw or stop
 * the run: a file that cannot be written (disk full, folder removed, permission) turns into one
 * warning on stderr (which is the journal when run by systemd) and the log counts as
 * incomplete, which the stack's result and the summary say.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Clock } from '../adapters/clock.js';
import type { Progress } from './report.js';

export interface StepHandle {
  done(fields?: Record<string, unknown>): void;
  failed(error: Error, fields?: Record<string, unknown>): void;
  /** What the step reports while it runs, on the terminal's progress line only. */
  detail?(text: string): void;
  /**
   * Ends the terminal's progress line now (as done), while the log's end line waits for done()
   * or failed(): a step whose result is read later, after other steps.
   */
  progressDone?(): void;
}

export interface StackLog {
  /** Starts a step: a log line now, another when it ends, and the progress line meanwhile. */
  step(name: string, fields?: Record<string, unknown>): StepHandle;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  readonly file: string;
  /** Why lines are missing from the file, once a write failed; undefined while it is whole. */
  readonly incomplete: string | undefined;
  close(): void;
}

/** Local calendar date, as a person reading the logs folder expects. */
export function localDate(ms: number): string {
  const date = new Date(ms);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** What a log is of: a stack's backups, or its restores (`restore-<stack>-DATE.log`, kept apart so each reads as one story). */
export type LogKind = 'backup' | 'restore';

export function stackLogFile(root: string, stack: string, ms: number, kind: LogKind = 'backup'): string {
  return path.join(root, 'logs', `${kind}-${stack}-${localDate(ms)}.log`);
}

/** Writes file contents; the real one is node:fs, a test passes one that fails like a full disk. */
export interface LogFileSystem {
  open(file: string): number;
  write(descriptor: number, bytes: Uint8Array): number;
  /** Whether the open file still has a name: a removed logs/ folder takes the file with it. */
  linked(descriptor: number): boolean;
  close(descriptor: number): void;
}

const realFileSystem: LogFileSystem = {
  open(file) {
    mkdirSync(path.dirname(file), { recursive: true });
    return openSync(file, 'a', 0o600);
  },
  write: (descriptor, bytes) => writeSync(descriptor, bytes),
  linked: (descriptor) => fstatSync(descriptor).nlink > 0,
  close: (descriptor) => closeSync(descriptor),
};

interface SafeDestination extends DestinationStream {
  readonly problem: string | undefined;
  close(): void;
}

/**
 * A pino destination that never throws and never retries. pino's own (sonic-boom) emits an
 * 'error' event on a failed write, which ends the process when nobody listens, and in sync mode
 * busy-waits and retries on EAGAIN: both can stop a restore. Writes are synchronous
 * (writeSync to a local file), so each line is on disk in order before the step goes on, and
 * a line is never half-kept in a buffer when the process ends. After the first failure the
 * file is left alone: a line cut off by a full disk is not followed by more lines that would
 * make the gap look like nothing.
 */
function safeDestination(file: string, files: LogFileSystem, warn: (text: string) => void): SafeDestination {
  let descriptor: number | undefined;
  let problem: string | undefined;
  const fail = (error: unknown) => {
    problem = `${file}: ${(error as Error).message ?? String(error)}`;
    warn(`cannot write the log ${problem}; the run goes on, and this log is incomplete`);
  };
  return {
    get problem() {
      // Writes into a file whose folder was removed succeed, and land nowhere anyone can read.
      if (problem === undefined && descriptor !== undefined) {
        try {
          if (!files.linked(descriptor)) fail(new Error('the file was removed while the run wrote it'));
        } catch (error) {
          fail(error);
        }
      }
      return problem;
    },
    write(line: string) {
      if (problem !== undefined) return;
      try {
        descriptor ??= files.open(file);
        let rest = Buffer.from(line);
        while (rest.length > 0) {
          const written = files.write(descriptor, rest);
          if (written <= 0) throw new Error('no space written');
          rest = rest.subarray(written);
        }
      } catch (error) {
        fail(error);
      }
    },
    close() {
      if (descriptor === undefined) return;
      try {
        files.close(descriptor);
      } catch {
        // Closing cannot lose what writeSync already handed to the kernel.
      }
      descriptor = undefined;
    },
  };
}

export function createStackLog(
  root: string,
  stack: string,
  runId: string,
  clock: Clock,
  progress: Progress,
  files: LogFileSystem = realFileSystem,
  kind: LogKind = 'backup',
): StackLog {
  const file = stackLogFile(root, stack, clock.now(), kind);
  const destination = safeDestination(file, files, (text) => progress.message(`[${stack}] warning: ${text}`));
  const logger: Logger = pino({ base: { stack, run: runId }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  return {
    file,
    get incomplete() {
      return destination.problem;
    },
    step(name, fields) {
      const started = clock.now();
      logger.info({ step: name, event: 'start', ...fields }, `${name}: start`);
      const progressEnd = progress.begin(stack, name);
      let progressOpen = true;
      const end = (outcome: 'done' | 'failed') => {
        if (progressOpen) progressEnd(outcome);
        progressOpen = false;
      };
      return {
        detail: (text) => {
          if (progressOpen) progressEnd.detail(text);
        },
        progressDone: () => end('done'),
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
      destination.close();
    },
  };
}

/** A log that writes nothing, for what must touch nothing (a dry run's reads). */
export function discardingLog(file: string): StackLog {
  const ignore = () => {};
  return {
    file,
    incomplete: undefined,
    step: () => ({ done: ignore, failed: ignore }),
    info: ignore,
    warn: ignore,
    error: ignore,
    close: ignore,
  };
}
