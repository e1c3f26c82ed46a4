/** What a restore test carries through a stack's run, and what it found. */
import type { FilterTest } from './filters.js';
import type { FileFacts } from '../adapters/source-files.js';
import type { StackRun } from '../steps/context.js';

/** One data path under test: where its frozen source is read, and what the version calls it. */
export interface TestedPath {
  job: string;
  backupId: string;
  /** The job's source as the container sees it: the version's paths begin with it. */
  source: string;
  /** The frozen source on the host: the live data while the stack is down, or the snapshot. */
  frozen: string;
  /** Beside the data: where the scratch folder goes. */
  live: string;
  /** The job's filters, where they can be read: what the version should hold of the source. */
  backedUp: FilterTest | undefined;
}

/** What a test found, for the summary, the history, the metrics and the pings. */
export interface RestoreTestResult {
  passed: boolean;
  /** Not run this time: why (not due, the backup failed). */
  skipped?: string | undefined;
  tested: number;
  identical: number;
  mismatches: number;
  bytes: number;
  ms: number;
  /** Of ms, reading the sample from the frozen source (in stop mode while the job ran). */
  readMs?: number | undefined;
  /** Regular files and symlinks in the frozen source (what the job backs up of it), and in the version. */
  sourceFiles?: number | undefined;
  versionFiles?: number | undefined;
  /** The summary's lines: `restore test: 20 of 20 files identical (1.2 MB) in 3.4 s`, each difference. */
  lines: string[];
}

export interface RestoreTestState {
  paths: TestedPath[];
  /** Set when the test cannot be prepared: the backup goes on, and the test fails with it. */
  problem?: string | undefined;
  /** The sample per path (relative to its source) and its facts, read from the frozen source. */
  sample?: Array<{ path: TestedPath; files: string[]; facts: Map<string, FileFacts>; sourceFiles: number }>;
  /** Stop mode: the reading under way while the job runs, and how to end it (the job failed: the data is not frozen for long). */
  reading?: Promise<void>;
  stopReading?: AbortController;
  /** How long reading the sample took (not the job it overlapped). */
  readMs?: number;
  result?: RestoreTestResult;
}

/** A backup's run: a stack's run, and the restore test it may carry (a restore's run carries none). */
export interface BackupRun extends StackRun {
  /** When the stack's last restore test passed (from the run history), for restore_test.interval. */
  lastPassingTestAt?: number | undefined;
  /** The restore test of this run, once prepared. */
  restoreTest?: RestoreTestState;
}
