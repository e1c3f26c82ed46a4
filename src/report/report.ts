/**
 * What a person watching stderr sees: the step under way with its elapsed time, warnings, and
 * the summary table at the end. On a terminal the current line is redrawn every second; in a
 * journal (no TTY) a line is printed when a step starts, every 30 s while it waits, and when it ends.
 */
import type { Clock } from '../adapters/clock.js';
import { formatSeconds } from '../format.js';

/** Ends a step's progress line; `detail` adds what the step reports meanwhile (Duplicati's progress). */
export type StepProgress = ((outcome: 'done' | 'failed') => void) & { detail(text: string): void };

export interface Progress {
  begin(stack: string, step: string): StepProgress;
  message(text: string): void;
  /** A line that goes to the log; shown on the terminal only with --verbose. */
  debug?(text: string): void;
}

/** -q: errors and the summary only; -v: the log's lines too. */
export type Verbosity = 'quiet' | 'normal' | 'verbose';

export interface TextSink {
  write(text: string): unknown;
  isTTY?: boolean;
}

export function createProgress(sink: TextSink, clock: Clock, verbosity: Verbosity = 'normal'): Progress {
  const interactive = sink.isTTY === true;
  let clearCurrent: (() => void) | undefined;
  if (verbosity === 'quiet') {
    return {
      begin(stack, step) {
        const started = clock.now();
        const end = (outcome: 'done' | 'failed') => {
          if (outcome === 'failed') sink.write(`[${stack}] ${step}: FAILED (${formatSeconds(clock.now() - started)})\n`);
        };
        // -q shows no progress, so the job's phase and progress are not shown either.
        return Object.assign(end, { detail() {} });
      },
      // Warnings stay off the terminal (they are in the log); errors and signals are shown.
      message(text) {
        if (!/(^|\] )warning: /.test(text)) sink.write(`${text}\n`);
      },
    };
  }
  return {
    ...(verbosity === 'verbose'
      ? {
          debug(text: string) {
            clearCurrent?.();
            sink.write(`${text}\n`);
          },
        }
      : {}),
    begin(stack, step) {
      const started = clock.now();
      const label = `[${stack}] ${step}`;
      let timer: NodeJS.Timeout | undefined;
      let detail = '';
      const draw = () => sink.write(`\r\x1b[K${label} ... ${formatSeconds(clock.now() - started)}${detail ? `, ${detail}` : ''}`);
      if (interactive) {
        draw();
        timer = setInterval(draw, 1000);
        clearCurrent = () => sink.write('\r\x1b[K');
      } else {
        sink.write(`${label} ...\n`);
        timer = setInterval(() => sink.write(`${label} ... still waiting, ${formatSeconds(clock.now() - started)}\n`), 30_000);
      }
      timer.unref();
      const end = (outcome: 'done' | 'failed') => {
        clearInterval(timer);
        clearCurrent = undefined;
        const mark = outcome === 'done' ? 'ok' : 'FAILED';
        sink.write(`${interactive ? '\r\x1b[K' : ''}${label}: ${mark} (${formatSeconds(clock.now() - started)})\n`);
      };
      return Object.assign(end, {
        // Only the terminal line shows it; a journal gets the log's progress lines instead.
        detail(text: string) {
          detail = text;
          if (interactive) draw();
        },
      });
    },
    message(text) {
      clearCurrent?.();
      sink.write(`${text}\n`);
    },
  };
}

export interface SummaryRow {
  stack: string;
  result: string;
  downtimeMs: number | undefined;
  backupMs: number | undefined;
  note: string;
}

/** Columns padded to their widest cell, two spaces apart: the tables of list, status and the summary. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  return [header, ...rows].map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd());
}

export function formatSummary(rows: readonly SummaryRow[]): string {
  const header = ['STACK', 'RESULT', 'DOWNTIME', 'BACKUP', 'NOTE'];
  const cells = rows.map((row) => [row.stack, row.result, formatSeconds(row.downtimeMs), formatSeconds(row.backupMs), row.note]);
  return `${formatTable(header, cells).join('\n')}\n`;
}

/** What every stack's run ends with, a backup's or a restore's. */
export interface RunOutcome {
  stack: string;
  ok: boolean;
  /** The forward step's failure (or the verify hook's), if any. */
  error: string | undefined;
  /** Undos that failed, hooks included. */
  restoreErrors: string[];
  /** A unit or socket may not be as it was: an undo other than a hook failed. */
  notRestored: boolean;
  aborted: boolean;
  /**
   * What the run could not write down: the log file missing lines, the crash journal not
   * updated after an undo (it will be replayed once more, harmlessly). The stack was still
   * restored, but such a run is not reported as a success: nobody could check it afterwards.
   */
  unrecorded?: string[];
}

/** Everything that went wrong in a stack's run, in one list for the log, the history and the summary. */
export function problems(result: Pick<RunOutcome, 'error' | 'restoreErrors' | 'unrecorded'>): string[] {
  return [...(result.error ? [result.error] : []), ...result.restoreErrors.map((text) => `restore: ${text}`), ...(result.unrecorded ?? [])];
}
