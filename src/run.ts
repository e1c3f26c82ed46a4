/**
 * A backup run over several stacks: takes the root's lock, runs each stack in turn (a failed
 * stack does not stop the next), and ends with the summary table.
 */
import { randomUUID } from 'node:crypto';
import type { GlobalConfig, StackConfig } from './config/types.js';
import { acquireRootLock } from './adapters/lock.js';
import { createStackLog } from './logging.js';
import { backupStack, type StackResult } from './orchestrator.js';
import { formatSummary, type Progress, type SummaryRow, type TextSink } from './report.js';
import type { Adapters } from './steps/context.js';
import { UndoStack } from './undo.js';

export interface RunRequest {
  global: GlobalConfig;
  stacks: readonly StackConfig[];
  adapters: Adapters;
  progress: Progress;
  /** Where the summary goes. */
  output: TextSink;
  signal: AbortSignal;
}

export interface RunReport {
  results: StackResult[];
  /** Stacks not started because the run was aborted first. */
  skipped: string[];
}

export async function runBackups(request: RunRequest): Promise<RunReport> {
  const { global, stacks, adapters, progress, signal } = request;
  const release = await acquireRootLock(global.root, (error) =>
    progress.message(`warning: the lock of ${global.root} was lost: ${error.message}`),
  );
  const runId = randomUUID();
  const results: StackResult[] = [];
  const skipped: string[] = [];
  try {
    for (const stack of stacks) {
      if (signal.aborted) {
        skipped.push(stack.name);
        continue;
      }
      const log = createStackLog(global.root, stack.name, runId, adapters.clock, progress);
      try {
        results.push(
          await backupStack({ stack, global, adapters, log, undo: new UndoStack(), signal, timings: {} }),
        );
      } finally {
        log.close();
      }
    }
  } finally {
    await release().catch(() => {});
  }
  request.output.write(`\n${formatSummary(summaryRows(results, skipped))}`);
  const logFiles = [...new Set(results.map((result) => result.logFile))];
  if (logFiles.length > 0) request.output.write(`Logs: ${logFiles.join(', ')}\n`);
  return { results, skipped };
}

function summaryRows(results: readonly StackResult[], skipped: readonly string[]): SummaryRow[] {
  return [
    ...results.map((result) => ({
      stack: result.stack,
      result: result.ok ? 'backed up' : result.notRestored ? 'FAILED, NOT RESTORED' : 'FAILED',
      downtimeMs: result.downtimeMs,
      backupMs: result.backupMs,
      note: [result.error, ...result.restoreErrors.map((text) => `restore: ${text}`)].filter(Boolean).join('; '),
    })),
    ...skipped.map((stack) => ({ stack, result: 'not run', downtimeMs: undefined, backupMs: undefined, note: 'run aborted before this stack' })),
  ];
}
