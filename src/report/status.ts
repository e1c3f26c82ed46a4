/**
 * `stack-backup status`: a verdict over every stack first, then per stack the last run, a
 * strip of the last 14 days and the last success from the history, and whether anything
 * waits for recovery. Built from files only; it touches nothing (the metrics file included).
 */
import { localDay, stripDays, type HistoryEntry } from './history.js';
import type { JournalEntry } from '../journal/journal.js';
import { formatSeconds } from '../format.js';
import { formatTable } from './report.js';
import { shownStacks, stackFacts } from './stack-facts.js';
import { undoName } from '../journal/undo-records.js';

/** What one day of the strip says: a run backed the stack up, runs that day all failed, or none ran. */
export type DayResult = 'backed_up' | 'failed' | 'no_run';

export interface StackStatus {
  stack: string;
  /** Has a file in stacks/ (else only the journal still holds something of it). */
  configured: boolean;
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
  /** false: the last run left the stack down (FAILED, NOT RESTORED) and no recover put it back yet; null: no run. */
  restored: boolean | null;
  /** Undos a run that died left behind (empty while a run is in progress). */
  pendingRecovery: string[];
  /** What the last run was to remove but kept, since it was not stack-backup's: "PATH (why)". */
  kept: string[];
  /** The last `stripDays` days, oldest first, today last (this machine's calendar days). */
  days: Array<{ date: string; result: DayResult }>;
  /** When the stack's last restore test passed; null when none did. */
  lastPassingTest: string | null;
  /** The last restore test that ran: whether it passed, and its first line. */
  lastTest: { passed: boolean; tested: number; mismatches: number; summary: string; at: string } | null;
}

/** One character per day in the strip. */
export const dayCharacters: Record<DayResult, string> = { backed_up: '+', failed: 'x', no_run: '.' };

/** The last `stripDays` calendar days up to today, oldest first: backed up when any run that day succeeded. */
export function dayStrip(runs: readonly HistoryEntry[], now: number): StackStatus['days'] {
  const results = new Map<string, DayResult>();
  for (const run of runs) {
    const day = localDay(Date.parse(run.endedAt));
    if (run.result === 'success') results.set(day, 'backed_up');
    else if (!results.has(day)) results.set(day, 'failed');
  }
  const today = new Date(now);
  const days: StackStatus['days'] = [];
  for (let back = stripDays - 1; back >= 0; back -= 1) {
    // Noon, so that a daylight saving change never skips or repeats a day.
    const date = localDay(new Date(today.getFullYear(), today.getMonth(), today.getDate() - back, 12).getTime());
    days.push({ date, result: results.get(date) ?? 'no_run' });
  }
  return days;
}

export function stackStatuses(
  stacks: readonly string[],
  history: readonly HistoryEntry[],
  journal: readonly JournalEntry[],
  runInProgress: boolean,
  now: number = Date.now(),
): StackStatus[] {
  // The journal of a live run is its own, not waiting for recovery.
  const pending = runInProgress ? [] : journal;
  // A stack no longer configured still shows while the journal holds something of it.
  return shownStacks(stacks, journal).map((stack) => {
    const facts = stackFacts(stack, stacks, history, pending);
    const { last, lastSuccess } = facts;
    return {
      stack,
      configured: facts.configured,
      lastRun: last?.endedAt ?? null,
      result: last?.result ?? 'never',
      outcome: last?.outcome ?? null,
      error: last?.error ?? null,
      mode: last ? (last.mode ?? 'stop') : null,
      downtimeMs: last?.downtimeMs ?? null,
      backupMs: last?.backupMs ?? null,
      snapshotMs: last?.snapshotMs ?? null,
      lastSuccess: lastSuccess?.endedAt ?? null,
      restored: last ? !facts.leftDown : null,
      kept: last?.kept ?? [],
      // In the order `recover` will replay them: the last change first.
      pendingRecovery: facts.pending.map((entry) => undoName(entry.undo)).reverse(),
      days: dayStrip(history.filter((entry) => entry.stack === stack), now),
      lastPassingTest: facts.lastPassingTest?.endedAt ?? null,
      lastTest: facts.lastTest?.restoreTest ? { ...facts.lastTest.restoreTest, at: facts.lastTest.endedAt } : null,
    };
  });
}

/** --max-untested-age: for the stacks with a restore test, the last passing one is older than the age, or missing. */
export function untested(status: StackStatus, maxUntested: { ms: number; now: number; tested: readonly string[] }): boolean {
  if (!maxUntested.tested.includes(status.stack)) return false;
  return status.lastPassingTest === null || maxUntested.now - Date.parse(status.lastPassingTest) > maxUntested.ms;
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
export function statusExitCode(
  statuses: readonly StackStatus[],
  maxAge?: { ms: number; now: number; configured: readonly string[] },
  maxUntested?: { ms: number; now: number; tested: readonly string[] },
): number {
  const stale = maxAge
    ? statuses.some((status) => maxAge.configured.includes(status.stack) && tooOld(status, maxAge.ms, maxAge.now))
    : false;
  const unproven = maxUntested ? statuses.some((status) => untested(status, maxUntested)) : false;
  return stale || unproven || statuses.some((status) => status.result === 'failed' || status.pendingRecovery.length > 0) ? 1 : 0;
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

/** The age the verdict calls overdue when --max-age is not given: a day and a bit, for nightly runs (as in monitoring/prometheus-rules.yml). */
export const defaultOverdueMs = 26 * 3_600_000;

/**
 * Where a stack stands, worst first: each stack counts once in the verdict, under the first that
 * applies. `untested` only with --max-untested-age: backed up, but no restore test passed within it.
 */
export type StackState = 'left_down' | 'recovery_pending' | 'failed' | 'never_backed_up' | 'overdue' | 'untested' | 'backed_up';

export function stackState(status: StackStatus, overdueMs: number, now: number, maxUntested?: { ms: number; now: number; tested: readonly string[] }): StackState {
  if (status.restored === false) return 'left_down';
  if (status.pendingRecovery.length > 0) return 'recovery_pending';
  if (status.result === 'failed') return 'failed';
  if (status.lastSuccess === null) return 'never_backed_up';
  if (now - Date.parse(status.lastSuccess) > overdueMs) return 'overdue';
  if (maxUntested && untested(status, maxUntested)) return 'untested';
  return 'backed_up';
}

/** An age as a person reads it: "45 min", "31 h", "5 d". */
export function formatAge(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${Math.max(minutes, 0)} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 72 ? `${hours} h` : `${Math.floor(hours / 24)} d`;
}

/**
 * The first line of `status`, read in a second: "5 stacks: all backed up within 26 h", or what
 * is wrong, worst first: "5 stacks: 1 failed (immich), 1 overdue (nextcloud, last success 31 h ago)".
 */
export function statusVerdict(statuses: readonly StackStatus[], overdueMs: number, now: number, maxUntested?: { ms: number; now: number; tested: readonly string[] }): string {
  const count = `${statuses.length} stack${statuses.length === 1 ? '' : 's'}`;
  if (statuses.length === 0) return `${count}: none configured`;
  const byState = new Map<StackState, StackStatus[]>();
  for (const status of statuses) {
    const state = stackState(status, overdueMs, now, maxUntested);
    byState.set(state, [...(byState.get(state) ?? []), status]);
  }
  if (byState.size === 1 && byState.has('backed_up')) return `${count}: all backed up within ${formatAge(overdueMs)}`;
  const words: Array<[StackState, string]> = [
    ['left_down', 'left down'],
    ['recovery_pending', 'recovery pending'],
    ['failed', 'failed'],
    ['never_backed_up', 'never backed up'],
  ];
  const parts = words.flatMap(([state, word]) => {
    const stacks = byState.get(state) ?? [];
    return stacks.length > 0 ? [`${stacks.length} ${word} (${stacks.map((status) => status.stack).join(', ')})`] : [];
  });
  const overdue = byState.get('overdue') ?? [];
  if (overdue.length > 0) {
    const ages = overdue.map((status) => `${status.stack}, last success ${formatAge(now - Date.parse(status.lastSuccess!))} ago`);
    parts.push(`${overdue.length} overdue (${ages.join('; ')})`);
  }
  const unproven = byState.get('untested') ?? [];
  if (unproven.length > 0) {
    const ages = unproven.map((status) => (status.lastPassingTest === null ? `${status.stack}, no restore test passed` : `${status.stack}, last passing restore test ${formatAge(now - Date.parse(status.lastPassingTest))} ago`));
    parts.push(`${unproven.length} untested (${ages.join('; ')})`);
  }
  return `${count}: ${parts.join(', ')}`;
}

/** Where the stacks were looked for, and whether that folder exists. */
export interface StatusRoot {
  stacksFolder: string;
  missing: boolean;
}

/**
 * The verdict line and the exit code, decided together so that they always agree. With
 * --max-age or --max-untested-age a monitor asks "is everything here backed up?": a root with no
 * stacks, or none at all, answers "unknown", and unknown is not healthy (exit 1). A missing stacks
 * folder is exit 1 whatever was asked: nothing there can be backed up, and --root is likely wrong.
 */
export function judgeStatus(
  statuses: readonly StackStatus[],
  where: StatusRoot,
  maxAge?: { ms: number; now: number; configured: readonly string[]; text?: string },
  now = maxAge?.now ?? Date.now(),
  maxUntested?: { ms: number; now: number; tested: readonly string[]; text?: string },
): { verdict: string; exitCode: number } {
  const asked = [maxAge?.text && `--max-age ${maxAge.text}`, maxUntested?.text && `--max-untested-age ${maxUntested.text}`].filter(Boolean).join(', ');
  if (where.missing) {
    return { verdict: `no stacks folder at ${where.stacksFolder}: no stack is known to be backed up here (is --root right?)`, exitCode: 1 };
  }
  if (statuses.length === 0) {
    const monitored = maxAge !== undefined || maxUntested !== undefined;
    return monitored
      ? { verdict: `0 stacks in ${where.stacksFolder}: none configured, so none is known to be backed up (${asked || 'a check was asked'})`, exitCode: 1 }
      : { verdict: `0 stacks in ${where.stacksFolder}: none configured`, exitCode: 0 };
  }
  return { verdict: statusVerdict(statuses, maxAge?.ms ?? defaultOverdueMs, now, maxUntested), exitCode: statusExitCode(statuses, maxAge, maxUntested) };
}

/** The status as a JSON document's body (see report/json-output.ts). */
export function statusJson(
  statuses: readonly StackStatus[],
  runInProgress: boolean,
  maxAge?: { ms: number; now: number; configured: readonly string[] },
  now = maxAge?.now ?? Date.now(),
  maxUntested?: { ms: number; now: number; tested: readonly string[] },
  verdict = statusVerdict(statuses, maxAge?.ms ?? defaultOverdueMs, now, maxUntested),
) {
  const overdueMs = maxAge?.ms ?? defaultOverdueMs;
  return {
    max_untested_age_seconds: maxUntested ? maxUntested.ms / 1000 : null,
    verdict,
    overdue_after_seconds: overdueMs / 1000,
    run_in_progress: runInProgress,
    max_age_seconds: maxAge ? maxAge.ms / 1000 : null,
    stacks: statuses.map((status) => ({
      stack: status.stack,
      state: stackState(status, overdueMs, now, maxUntested),
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
      restored: status.restored,
      pending_recovery: status.pendingRecovery,
      kept_paths: status.kept,
      days: status.days,
      last_passing_restore_test: status.lastPassingTest,
      last_restore_test: status.lastTest ? { at: status.lastTest.at, passed: status.lastTest.passed, files: status.lastTest.tested, mismatches: status.lastTest.mismatches, summary: status.lastTest.summary } : null,
      untested_too_long: maxUntested ? untested(status, maxUntested) : null,
    })),
  };
}

function resultText(status: StackStatus): string {
  if (status.restored === false) return 'failed, not restored';
  if (status.result !== 'success') return status.result;
  if (status.outcome === 'unknown') return 'ran, outcome unknown';
  if (status.outcome === 'completed') return 'completed, result not seen';
  return status.result;
}

export function formatStatus(
  statuses: readonly StackStatus[],
  runInProgress: boolean,
  maxAge?: { ms: number; now: number; configured: readonly string[]; text: string },
  now = maxAge?.now ?? Date.now(),
  maxUntested?: { ms: number; now: number; tested: readonly string[]; text: string },
  verdict = statusVerdict(statuses, maxAge?.ms ?? defaultOverdueMs, now, maxUntested),
): string {
  const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
  const header = ['STACK', 'LAST RUN', `LAST ${stripDays} DAYS`, 'RESULT', 'MODE', 'DOWNTIME', 'BACKUP', 'LAST SUCCESS', 'RESTORE TESTED', 'PENDING RECOVERY'];
  const rows = statuses.map((status) => [
    status.stack,
    when(status.lastRun),
    status.days.map((day) => dayCharacters[day.result]).join(''),
    resultText(status),
    status.mode ?? '-',
    formatSeconds(status.downtimeMs ?? undefined),
    formatSeconds(status.backupMs ?? undefined),
    when(status.lastSuccess),
    when(status.lastPassingTest),
    status.pendingRecovery.join(', ') || '-',
  ]);
  // No stacks: the verdict says it all; an empty table would only look like a result.
  const lines = statuses.length === 0 ? [verdict] : [verdict, '', ...formatTable(header, rows)];
  if (statuses.length > 0) {
    lines.push(`(LAST ${stripDays} DAYS: oldest first, today last; ${dayCharacters.backed_up} backed up, ${dayCharacters.failed} failed, ${dayCharacters.no_run} no run)`);
  }
  for (const status of statuses) if (status.result === 'failed' && status.error) lines.push(`${status.stack}: ${status.error}`);
  for (const status of statuses) for (const kept of status.kept) lines.push(`${status.stack}: kept ${kept}: not stack-backup's, not removed; look at it`);
  for (const status of statuses) if (status.lastTest && !status.lastTest.passed) lines.push(`${status.stack}: the last restore test failed (${when(status.lastTest.at)}): ${status.lastTest.summary}`);
  if (maxUntested) {
    for (const status of statuses) {
      if (!untested(status, maxUntested)) continue;
      lines.push(
        status.lastPassingTest === null
          ? `${status.stack}: no restore test has passed (--max-untested-age ${maxUntested.text})`
          : `${status.stack}: the last passing restore test, ${when(status.lastPassingTest)}, is older than ${maxUntested.text}`,
      );
    }
  }
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
