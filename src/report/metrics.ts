/**
 * The Prometheus textfile (node_exporter textfile collector format), made from the run
 * history and the crash journal so that every configured stack shows, not only those of this
 * run. Written aside and renamed, as the collector may read it at any moment.
 *
 * Who writes it: a run, after each stack and after the recovery it begins with; `recover`,
 * after replaying the journal. `status` only reads. A run that dies writes nothing: under the
 * timer, `recover` runs right after it (ExecStopPost=) and writes what it left.
 */
import { writeTextFileAtomically } from '../state-files.js';
import { readHistory, type HistoryEntry } from './history.js';
import { createJournal, type JournalEntry } from '../journal/journal.js';
import { shownStacks, stackFacts, type StackFacts } from './stack-facts.js';

/** What the file is made from. */
export interface MetricsSources {
  /** The stacks configured now (stacks/*.yaml): each has its series, run or not. */
  configured: readonly string[];
  history: readonly HistoryEntry[];
  /** The crash journal's entries: undos that wait for `recover` (no stack is mid-run when the file is written). */
  pending: readonly JournalEntry[];
}

interface Metric {
  name: string;
  help: string;
  /** undefined: no sample for this stack. */
  value(facts: StackFacts): number | undefined;
}

const seconds = (iso: string) => Math.round(Date.parse(iso) / 1000);

/** One gauge per row, one sample per stack, labelled stack="...". */
const metrics: readonly Metric[] = [
  {
    name: 'stack_backup_last_run_timestamp_seconds',
    help: 'When the stack\'s last run ended (Unix time).',
    value: ({ last }) => (last ? seconds(last.endedAt) : undefined),
  },
  {
    name: 'stack_backup_last_success_timestamp_seconds',
    help: 'When the stack\'s last successful run ended (Unix time); no sample when it never succeeded.',
    value: ({ lastSuccess }) => (lastSuccess ? seconds(lastSuccess.endedAt) : undefined),
  },
  {
    name: 'stack_backup_last_run_success',
    help: '1 when the stack\'s last run succeeded, else 0.',
    value: ({ last }) => (last ? (last.result === 'success' ? 1 : 0) : undefined),
  },
  {
    name: 'stack_backup_last_run_outcome_known',
    help: '1 when Duplicati\'s result of the last run was seen (driver api; driver exec from Duplicati 2.2.0.3), else 0.',
    // Runs recorded before outcomes were kept count as unknown too.
    value: ({ last }) => (last ? (last.outcome !== undefined && last.outcome !== 'unknown' && last.outcome !== 'completed' ? 1 : 0) : undefined),
  },
  {
    name: 'stack_backup_downtime_seconds',
    help: 'Downtime of the last run: unit stop to unit started again.',
    value: ({ last }) => (last?.downtimeMs !== undefined ? last.downtimeMs / 1000 : undefined),
  },
  {
    name: 'stack_backup_backup_duration_seconds',
    help: 'Duration of the Duplicati jobs of the last run.',
    value: ({ last }) => (last?.backupMs !== undefined ? last.backupMs / 1000 : undefined),
  },
  {
    name: 'stack_backup_snapshot_mode',
    help: '1 when the stack\'s last run was in snapshot mode (down only while its data was snapshotted), 0 in stop mode.',
    value: ({ last }) => (last ? (last.mode === 'snapshot' ? 1 : 0) : undefined),
  },
  {
    name: 'stack_backup_snapshot_seconds',
    help: 'Snapshot mode: time the snapshots of the last run took (part of its downtime).',
    value: ({ last }) => (last?.snapshotMs !== undefined ? last.snapshotMs / 1000 : undefined),
  },
  {
    name: 'stack_backup_stack_restored',
    help: '0 when the stack\'s last run left it down (the summary\'s FAILED, NOT RESTORED) and no recover has put it back since, else 1.',
    value: ({ last, leftDown }) => (last ? (leftDown ? 0 : 1) : undefined),
  },
  {
    name: 'stack_backup_recovery_pending',
    help: 'Undos of the stack that wait in the crash journal for stack-backup recover (a run that died, or a restore that failed), else 0.',
    value: ({ pending }) => pending.length,
  },
  {
    name: 'stack_backup_snapshots_left',
    help: 'Snapshots of the stack left in place, their removal waiting in the crash journal (counted in stack_backup_recovery_pending too): kept for a Duplicati task that may still read them, or not removed. The stack runs.',
    value: ({ pending }) => pending.filter((entry) => entry.undo.kind === 'remove-snapshot').length,
  },
  {
    name: 'stack_backup_restore_test_timestamp_seconds',
    help: 'When the stack\'s last passing restore test ended (Unix time): a sample of its backup restored and found identical to the frozen source; no sample when none passed.',
    value: ({ lastPassingTest }) => (lastPassingTest ? seconds(lastPassingTest.endedAt) : undefined),
  },
  {
    name: 'stack_backup_restore_test_success',
    help: '1 when the stack\'s last restore test passed, 0 when it failed; no sample when none ran.',
    value: ({ lastTest }) => (lastTest?.restoreTest ? (lastTest.restoreTest.passed ? 1 : 0) : undefined),
  },
  {
    name: 'stack_backup_restore_test_files',
    help: 'Files the stack\'s last restore test restored and compared.',
    value: ({ lastTest }) => lastTest?.restoreTest?.tested,
  },
  {
    name: 'stack_backup_restore_test_mismatches',
    help: 'Files of the stack\'s last restore test that did not come back identical (contents, size, mode, owner, group, mtime or link target).',
    value: ({ lastTest }) => lastTest?.restoreTest?.mismatches,
  },
  {
    name: 'stack_backup_stack_configured',
    help: '1 when the stack has a file in stacks/, 0 when only the crash journal still holds something of it.',
    value: ({ configured }) => (configured ? 1 : 0),
  },
];

/** The metric names, in the file's order. */
export const metricNames: readonly string[] = metrics.map((metric) => metric.name);

function label(stack: string): string {
  return `{stack="${stack.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"}`;
}

export function renderMetrics(sources: MetricsSources): string {
  // A stack removed from stacks/ leaves the file (its alerts end), unless the journal still holds something of it.
  const stacks = shownStacks(sources.configured, sources.pending).sort();
  const facts = stacks.map((stack) => [stack, stackFacts(stack, sources.configured, sources.history, sources.pending)] as const);
  const lines: string[] = [];
  for (const metric of metrics) {
    lines.push(`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} gauge`);
    for (const [stack, fact] of facts) {
      const value = metric.value(fact);
      if (value !== undefined) lines.push(`${metric.name}${label(stack)} ${value}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Writes the file from what the root holds now. Monitoring must never stop a run or an undo:
 * a failure is handed to `warn`, not thrown.
 */
export function writeMetricsFile(root: string, file: string, configured: () => readonly string[], warn: (text: string) => void): void {
  try {
    const sources = { configured: configured(), history: readHistory(root), pending: createJournal(root, '').pending() };
    writeTextFileAtomically(file, renderMetrics(sources));
  } catch (error) {
    warn(`warning: cannot write metrics_file ${file}: ${(error as Error).message}`);
  }
}
