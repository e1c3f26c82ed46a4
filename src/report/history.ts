/** A bounded history of runs per stack, for `stack-backup status` and monitoring. */
import path from 'node:path';
import { readJsonFile, writeJsonFileDurably } from '../state-files.js';

export interface HistoryEntry {
  stack: string;
  run: string;
  startedAt: string;
  endedAt: string;
  result: 'success' | 'failed';
  /** Duplicati's verdict: success, warning, completed (the exec driver saw it finish, not its result), unknown, failed. */
  outcome?: 'success' | 'warning' | 'completed' | 'unknown' | 'failed' | undefined;
  error?: string | undefined;
  notRestored: boolean;
  /** stop or snapshot; absent in runs recorded before snapshot mode (stop). */
  mode?: 'stop' | 'snapshot' | undefined;
  downtimeMs?: number | undefined;
  backupMs?: number | undefined;
  /** Snapshot mode: the time the snapshots took, part of the downtime. */
  snapshotMs?: number | undefined;
  /** Paths the run was to remove but kept, since they were not what stack-backup made: "PATH (why)". */
  kept?: string[] | undefined;
  /** The restore test, where one ran: passed, files tested, files that differed, the verdict's first line. */
  restoreTest?: { passed: boolean; tested: number; mismatches: number; summary: string } | undefined;
}

/** The stack's last run whose restore test passed, or undefined. */
export function lastPassingTest(runs: readonly HistoryEntry[], stack: string): HistoryEntry | undefined {
  return runs.filter((run) => run.stack === stack && run.restoreTest?.passed === true).at(-1);
}

interface HistoryFile {
  version: 1;
  runs: HistoryEntry[];
}

/** The last runs kept per stack, whatever their age. */
export const historyLength = 30;

/** Days `status` shows one character of, today included. */
export const stripDays = 14;

export function historyFile(root: string): string {
  return path.join(root, 'logs', 'history.json');
}

export function readHistory(root: string): HistoryEntry[] {
  return readJsonFile<HistoryFile>(historyFile(root), { version: 1, runs: [] }).runs;
}

/** The calendar day (this machine's time zone) a time falls on, as YYYY-MM-DD. */
export function localDay(time: number): string {
  const date = new Date(time);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')}`;
}

/**
 * The runs of one stack worth keeping, in order: the last `historyLength`, the last success
 * (a stack failing for weeks must still show when it was last backed up), and, for each day
 * of the status strip (one day more, for time zones and clocks), that day's last run and last
 * success: all the strip needs, however many manual runs a day saw. At most about 60 runs.
 */
export function keptRuns(runs: readonly HistoryEntry[], now: number): HistoryEntry[] {
  const kept = new Set(runs.slice(-historyLength));
  const successes = runs.filter((run) => run.result === 'success');
  if (successes.length > 0) kept.add(successes.at(-1)!);
  // Likewise the last passing restore test, for status --max-untested-age.
  const tested = runs.filter((run) => run.restoreTest?.passed === true).at(-1);
  if (tested) kept.add(tested);
  const since = now - (stripDays + 1) * 86_400_000;
  const lastOfDay = new Map<string, HistoryEntry>();
  const lastSuccessOfDay = new Map<string, HistoryEntry>();
  for (const run of runs) {
    const ended = Date.parse(run.endedAt);
    if (!(ended >= since)) continue;
    lastOfDay.set(localDay(ended), run);
    if (run.result === 'success') lastSuccessOfDay.set(localDay(ended), run);
  }
  for (const run of [...lastOfDay.values(), ...lastSuccessOfDay.values()]) kept.add(run);
  return runs.filter((run) => kept.has(run));
}

export function appendHistory(root: string, entry: HistoryEntry): void {
  const runs = [...readHistory(root), entry];
  const ofStack = runs.filter((run) => run.stack === entry.stack);
  const keep = new Set(keptRuns(ofStack, Date.parse(entry.endedAt)));
  const kept = runs.filter((run) => run.stack !== entry.stack || keep.has(run));
  writeJsonFileDurably(historyFile(root), { version: 1, runs: kept } satisfies HistoryFile);
}
