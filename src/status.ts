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
  mode: 'stop' | 'snapshot' | null;
  downtimeMs: number | null;
  backupMs: number | null;
  snapshotMs: number | null;
  lastSuccess: string | null;
  /** Undos a run that died left behind (empty while a run is in progress). */
  pendingRecovery: string[];
  /** What the last run was to remove but kept, since it was not stack-backup's: "PATH (why)". */
  kept: string[];
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
      mode: last ? (last.mode ?? 'stop') : null,
      downtimeMs: last?.downtimeMs ?? null,
      backupMs: last?.backupMs ?? null,
      snapshotMs: last?.snapshotMs ?? null,
      lastSuccess: lastSuccess?.endedAt ?? null,
      kept: last?.kept ?? [],
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

/**
 * A stack's last success is too old for --max-age: older than the age, or missing (a stack
 * never backed up counts as failed). Only stacks still configured count.
 */
export function tooOld(status: StackStatus, maxAgeMs: number, now: number): boolean {
  return status.lastSuccess === null || now - Date.parse(status.lastSuccess) > maxAgeMs;
}

/**
 * 1 when a monitor should look: a last run failed, something waits for recovery, or (with
 * --max-age) a configured stack's last success is too old or missing.
 */
export function statusExitCode(statuses: readonly StackStatus[], maxAge?: { ms: number; now: number; configured: readonly string[] }): number {
  const stale = maxAge
    ? statuses.some((status) => maxAge.configured.includes(status.stack) && tooOld(status, maxAge.ms, maxAge.now))
    : false;
  return stale || statuses.some((status) => status.result === 'failed' || status.pendingRecovery.length > 0) ? 1 : 0;
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "26h", "90m", "1d12h", "3600" (seconds) -> milliseconds; a UsageError-worthy undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/^(\d+(\.\d+)?[smhdw])+$/.test(trimmed)) return undefined;
  let seconds = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) seconds += Number(amount) * durationUnits[unit!]!;
  return seconds > 0 ? seconds * 1000 : undefined;
}

/** The status as a JSON document's body (see json-output.ts). */
export function statusJson(statuses: readonly StackStatus[], runInProgress: boolean, maxAge?: { ms: number; now: number; configured: readonly string[] }) {
  return {
    run_in_progress: runInProgress,
    max_age_seconds: maxAge ? maxAge.ms / 1000 : null,
    stacks: statuses.map((status) => ({
      stack: status.stack,
      last_run: status.lastRun,
      result: status.result,
      outcome: status.outcome,
      error: status.error,
      mode: status.mode,
      downtime_seconds: status.downtimeMs === null ? null : status.downtimeMs / 1000,
      backup_seconds: status.backupMs === null ? null : status.backupMs / 1000,
      snapshot_seconds: status.snapshotMs === null ? null : status.snapshotMs / 1000,
      last_success: status.lastSuccess,
      last_success_too_old: maxAge ? maxAge.configured.includes(status.stack) && tooOld(status, maxAge.ms, maxAge.now) : null,
      pending_recovery: status.pendingRecovery,
      kept_paths: status.kept,
    })),
  };
}

export function formatStatus(
  statuses: readonly StackStatus[],
  runInProgress: boolean,
  maxAge?: { ms: number; now: number; configured: readonly string[]; text: string },
): string {
  const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
  const header = ['STACK', 'LAST RUN', 'RESULT', 'MODE', 'DOWNTIME', 'BACKUP', 'LAST SUCCESS', 'PENDING RECOVERY'];
  const rows = statuses.map((status) => [
    status.stack,
    when(status.lastRun),
    status.result !== 'success' ? status.result : status.outcome === 'unknown' ? 'ran, outcome unknown' : status.outcome === 'completed' ? 'completed, result not seen' : status.result,
    status.mode ?? '-',
    formatSeconds(status.downtimeMs ?? undefined),
    formatSeconds(status.backupMs ?? undefined),
    when(status.lastSuccess),
    status.pendingRecovery.join(', ') || '-',
  ]);
  const lines = formatTable(header, rows);
  for (const status of statuses) if (status.result === 'failed' && status.error) lines.push(`${status.stack}: ${status.error}`);
  for (const status of statuses) for (const kept of status.kept) lines.push(`${status.stack}: kept ${kept}: not stack-backup's, not removed; look at it`);
  if (maxAge) {
    for (const status of statuses) {
      if (!maxAge.configured.includes(status.stack) || !tooOld(status, maxAge.ms, maxAge.now)) continue;
      lines.push(
        status.lastSuccess === null
          ? `${status.stack}: never backed up successfully (--max-age ${maxAge.text})`
          : `${status.stack}: last successful backup ${when(status.lastSuccess)} is older than ${maxAge.text}`,
      );
    }
  }
  if (runInProgress) lines.push('A run is in progress (it holds the lock).');
  return `${lines.join('\n')}\n`;
}
