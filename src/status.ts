/**
 * `stack-backup status`: per stack, the last run and the last success from the history, and
 * whether anything waits for recovery. Built from files only; it touches nothing.
 */
import type { HistoryEntry } from './history.js';
import type { JournalEntry } from './journal.js';
import { formatSeconds, formatTable } from './report.js';
import { undoName } from './undo-records.js';

export interface StackStatus {
  stack: string;
  lastRun: string | null;
  result: 'success' | 'failed' | 'never';
  /** Duplicati's verdict on the last run; `unknown` where the driver could not see it. */
  outcome: string | null;
  error: string | null;
  downtimeMs: number | null;
  backupMs: number | null;
  lastSuccess: string | null;
  /** Undos a run that died left behind (empty while a run is in progress). */
  pendingRecovery: string[];
}

export function stackStatuses(
  stacks: readonly string[],
  history: readonly HistoryEntry[],
  journal: readonly JournalEntry[],
  runInProgress: boolean,
): StackStatus[] {
  // A stack no longer configured still shows while the journal holds something of it.
  const names = [...new Set([...stacks, ...journal.map((entry) => entry.stack)])];
  return names.map((stack) => {
    const runs = history.filter((entry) => entry.stack === stack);
    const last = runs.at(-1);
    const lastSuccess = runs.filter((entry) => entry.result === 'success').at(-1);
    return {
      stack,
      lastRun: last?.endedAt ?? null,
      result: last?.result ?? 'never',
      outcome: last?.outcome ?? null,
      error: last?.error ?? null,
      downtimeMs: last?.downtimeMs ?? null,
      backupMs: last?.backupMs ?? null,
      lastSuccess: lastSuccess?.endedAt ?? null,
      // In the order `recover` will replay them: the last change first.
      pendingRecovery: runInProgress
        ? []
        : journal
            .filter((entry) => entry.stack === stack)
            .map((entry) => undoName(entry.undo))
            .reverse(),
    };
  });
}

/** 1 when a monitor should look: a last run failed or something waits for recovery. */
export function statusExitCode(statuses: readonly StackStatus[]): number {
  return statuses.some((status) => status.result === 'failed' || status.pendingRecovery.length > 0) ? 1 : 0;
}

export function formatStatus(statuses: readonly StackStatus[], runInProgress: boolean): string {
  const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
  const header = ['STACK', 'LAST RUN', 'RESULT', 'DOWNTIME', 'BACKUP', 'LAST SUCCESS', 'PENDING RECOVERY'];
  const rows = statuses.map((status) => [
    status.stack,
    when(status.lastRun),
    status.result === 'success' && status.outcome === 'unknown' ? 'ran, outcome unknown' : status.result,
    formatSeconds(status.downtimeMs ?? undefined),
    formatSeconds(status.backupMs ?? undefined),
    when(status.lastSuccess),
    status.pendingRecovery.join(', ') || '-',
  ]);
  const lines = formatTable(header, rows);
  for (const status of statuses) if (status.result === 'failed' && status.error) lines.push(`${status.stack}: ${status.error}`);
  if (runInProgress) lines.push('A run is in progress (it holds the lock).');
  return `${lines.join('\n')}\n`;
}
