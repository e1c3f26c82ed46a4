/** A bounded history of runs per stack, for `stack-backup status` and monitoring. */
import path from 'node:path';
import { readJsonFile, writeJsonFileDurably } from './adapters/state-files.js';

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
}

interface HistoryFile {
  version: 1;
  runs: HistoryEntry[];
}

/** Runs kept per stack. */
export const historyLength = 30;

export function historyFile(root: string): string {
  return path.join(root, 'logs', 'history.json');
}

export function readHistory(root: string): HistoryEntry[] {
  return readJsonFile<HistoryFile>(historyFile(root), { version: 1, runs: [] }).runs;
}

export function appendHistory(root: string, entry: HistoryEntry): void {
  const runs = [...readHistory(root), entry];
  const ofStack = runs.filter((run) => run.stack === entry.stack);
  const dropped = new Set(ofStack.slice(0, Math.max(0, ofStack.length - historyLength)));
  const kept = runs.filter((run) => !dropped.has(run));
  writeJsonFileDurably(historyFile(root), { version: 1, runs: kept } satisfies HistoryFile);
}
