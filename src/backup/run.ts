/**
 * A backup run over several stacks: takes the root's lock, first puts back what a run that
 * died left behind (the crash journal), runs each stack in turn (a failed stack does not stop
 * the next), records the history, prunes old logs, and ends with the summary table.
 */
import path from 'node:path';
import { pruneLogs, readLogTail } from '../adapters/files.js';
import type { HttpSend } from '../adapters/http.js';
import { LockHeldError } from '../errors.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { appendHistory, historyFile, lastPassingTest, readHistory, type HistoryEntry } from '../report/history.js';
import { createStackLog } from '../report/logging.js';
import { writeMetricsFile } from '../report/metrics.js';
import { createStackMonitor, type StackMonitor } from './monitor.js';
import { backupStack, type StackResult } from './orchestrator.js';
import { type RecoveryReport } from '../recover.js';
import { formatSeconds } from '../format.js';
import { formatSummary, problems, type Progress, type SummaryRow, type TextSink } from '../report/report.js';
import type { Adapters } from '../adapters/adapters.js';
import { beginStackRun } from '../steps/context.js';
import { withOpenRun } from '../open-run.js';

export interface RunRequest {
  global: GlobalConfig;
  /** Sends the monitoring reports; none are sent without it. */
  sendHttp?: HttpSend;
  stacks: readonly StackConfig[];
  /** Every stack configured in the root, for the metrics file (default: the run's stacks). */
  configured?: readonly string[];
  adapters: Adapters;
  progress: Progress;
  /** Where the summary goes. */
  output: TextSink;
  signal: AbortSignal;
}

export interface RunReport {
  /** What a run that died had left, put back before this run took any stack. */
  recovery: RecoveryReport;
  results: StackResult[];
  /** Stacks not started because the run was aborted first. */
  skipped: string[];
  /** Stacks not started because another root's run holds their unit: what it said. */
  locked?: Array<{ stack: string; reason: string }>;
}

export async function runBackups(request: RunRequest): Promise<RunReport> {
  const { global, stacks, adapters, progress } = request;
  const results: StackResult[] = [];
  const skipped: string[] = [];
  const locked: Array<{ stack: string; reason: string }> = [];
  const reports: Array<Promise<{ stack: string; failures: string[] }>> = [];
  const onLoss = { doing: 'restoring the stack under way and starting no other', ended: 'the run was ended' };
  // What the recovery put back, or could not, shows before the first stack's long run.
  const opened = withOpenRun(request, { onLoss, recover: true, recovered: () => writeMetrics(request) }, async ({ runId, journal, signal, recovery, lockUnit }) => {
    for (const stack of stacks) {
      if (signal.aborted) {
        skipped.push(stack.name);
        continue;
      }
      let releaseUnit: () => Promise<void>;
      try {
        releaseUnit = await lockUnit(stack.unit);
      } catch (error) {
        if (!(error instanceof LockHeldError)) throw error;
        progress.message(`[${stack.name}] not run: ${error.message}`);
        locked.push({ stack: stack.name, reason: error.message });
        continue;
      }
      const log = createStackLog(global.root, stack.name, runId, adapters.clock, progress);
      const startedAt = new Date(adapters.clock.now()).toISOString();
      const monitor = request.sendHttp ? createStackMonitor(stack.name, stack.monitor, request.sendHttp) : undefined;
      monitor?.started();
      try {
        const lastTest = stack.restoreTest ? lastPassingTestAt(global.root, stack.name) : undefined;
        const result = await backupStack({ ...beginStackRun({ runId, stack, global, adapters, log, signal, journal }), lastPassingTestAt: lastTest });
        results.push(result);
        if (monitor) reports.push(reportLater(stack.name, monitor, result));
        recordHistory(global.root, progress, {
          stack: stack.name,
          run: runId,
          startedAt,
          endedAt: new Date(adapters.clock.now()).toISOString(),
          result: result.ok ? 'success' : 'failed',
          outcome: result.outcome,
          error: problems(result).join('; ') || undefined,
          notRestored: result.notRestored,
          mode: result.mode,
          downtimeMs: result.downtimeMs,
          backupMs: result.backupMs,
          snapshotMs: result.snapshotMs,
          ...(result.keptPaths ? { kept: result.keptPaths } : {}),
          ...(result.restoreTest && !result.restoreTest.skipped
            ? { restoreTest: { passed: result.restoreTest.passed, tested: result.restoreTest.tested, mismatches: result.restoreTest.mismatches, summary: result.restoreTest.lines[0] ?? '' } }
            : {}),
        });
      } finally {
        log.close();
        await releaseUnit().catch(() => {});
      }
      writeMetrics(request);
    }
    await pruneLogs(path.join(global.root, 'logs'), global.logRetentionDays, adapters.clock.now()).catch((error: Error) =>
      progress.message(`warning: cannot prune old logs: ${error.message}`),
    );
    return { runId, recovery };
  });
  // The exec sessions into the Duplicati container end with the run, a recovery that failed included.
  const { runId, recovery } = await opened.finally(() => adapters.duplicati.close?.().catch(() => {}));
  // Monitoring ran in the background; each report is bounded in time, so this wait is too.
  for (const { stack, failures } of await Promise.all(reports)) {
    if (failures.length === 0) continue;
    const log = createStackLog(global.root, stack, runId, adapters.clock, progress);
    for (const failure of failures) log.warn(`monitoring report not delivered: ${failure}`);
    log.close();
  }
  for (const line of recovery.restored) request.output.write(`recovered: ${line}\n`);
  for (const line of recovery.failed) request.output.write(`NOT RECOVERED: ${line}\n`);
  request.output.write(`\n${formatSummary(summaryRows(results, skipped, locked))}`);
  const logFiles = [...new Set(results.map((result) => result.logFile))];
  if (logFiles.length > 0) request.output.write(`Logs: ${logFiles.join(', ')}\n`);
  return { recovery, results, skipped, locked };
}

/** When the stack's last restore test passed; a history that cannot be read counts as none (the test is then due). */
function lastPassingTestAt(root: string, stack: string): number | undefined {
  try {
    const entry = lastPassingTest(readHistory(root), stack);
    return entry ? Date.parse(entry.endedAt) : undefined;
  } catch {
    return undefined;
  }
}

/** The history only feeds `status` and the metrics: failing to write it must not stop the next stack. */
function recordHistory(root: string, progress: Progress, entry: HistoryEntry): void {
  try {
    appendHistory(root, entry);
  } catch (error) {
    progress.message(`warning: cannot record the run in ${historyFile(root)}: ${(error as Error).message}`);
  }
}

async function reportLater(stack: string, monitor: StackMonitor, result: StackResult): Promise<{ stack: string; failures: string[] }> {
  // Every line the log has of this day; the monitor keeps the end that fits its body limit.
  const { failures } = await monitor.finished(result, readLogTail(result.logFile, Number.MAX_SAFE_INTEGER));
  return { stack, failures };
}

/** The metrics file follows the history and the journal after each stack; a failure to write it is only a warning. */
function writeMetrics({ global, stacks, configured, progress }: RunRequest): void {
  if (!global.metricsFile) return;
  writeMetricsFile(global.root, global.metricsFile, () => configured ?? stacks.map((stack) => stack.name), (text) => progress.message(text));
}

function resultLabel(result: StackResult): string {
  if (result.notRestored) return 'FAILED, NOT RESTORED';
  const labels = { success: 'backed up', warning: 'backed up, warnings', completed: 'completed, result not seen', unknown: 'ran, outcome unknown', failed: 'FAILED' };
  return labels[result.outcome];
}

function summaryRows(results: readonly StackResult[], skipped: readonly string[], locked: ReadonlyArray<{ stack: string; reason: string }>): SummaryRow[] {
  return [
    ...results.map((result) => ({
      stack: result.stack,
      result: resultLabel(result),
      downtimeMs: result.downtimeMs,
      backupMs: result.backupMs,
      note: [
        result.mode === 'snapshot' ? `snapshot mode (snapshots ${formatSeconds(result.snapshotMs)})` : undefined,
        result.queueMs ? `queued ${formatSeconds(result.queueMs)} behind another Duplicati task` : undefined,
        ...(result.snapshotsLeft ?? []).map((target) => `snapshot left at ${target}`),
        ...(result.keptPaths ?? []).map((kept) => `kept ${kept}: not stack-backup's, not removed`),
        ...(result.restoreTest ? [result.restoreTest.passed ? result.restoreTest.lines[0]! : undefined] : []),
        ...problems(result),
      ]
        .filter(Boolean)
        .join('; '),
    })),
    ...locked.map(({ stack, reason }) => ({ stack, result: 'not run', downtimeMs: undefined, backupMs: undefined, note: reason })),
    ...skipped.map((stack) => ({ stack, result: 'not run', downtimeMs: undefined, backupMs: undefined, note: 'run aborted before this stack' })),
  ];
}
