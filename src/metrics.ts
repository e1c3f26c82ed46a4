/**
 * The Prometheus textfile (node_exporter textfile collector format), made from the run
 * history so every stack shows, not only those of this run. Written aside and renamed, as the
 * collector may read it at any moment.
 */
import type { HistoryEntry } from './history.js';

const metrics = [
  ['stack_backup_last_run_timestamp_seconds', 'When the stack\'s last run ended (Unix time).'],
  ['stack_backup_last_success_timestamp_seconds', 'When the stack\'s last successful run ended (Unix time).'],
  ['stack_backup_last_run_success', '1 when the stack\'s last run succeeded, else 0.'],
  ['stack_backup_last_run_outcome_known', '1 when Duplicati\'s result of the last run was seen (driver api; driver exec from Duplicati 2.2.0.3), else 0.'],
  ['stack_backup_downtime_seconds', 'Downtime of the last run: unit stop to unit started again.'],
  ['stack_backup_backup_duration_seconds', 'Duration of the Duplicati jobs of the last run.'],
  ['stack_backup_snapshot_mode', '1 when the stack\'s last run was in snapshot mode (down only while its data was snapshotted), 0 in stop mode.'],
  ['stack_backup_snapshot_seconds', 'Snapshot mode: time the snapshots of the last run took (part of its downtime).'],
] as const;

function label(stack: string): string {
  return `{stack="${stack.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"}`;
}

const seconds = (iso: string) => Math.round(Date.parse(iso) / 1000);

export function renderMetrics(history: readonly HistoryEntry[]): string {
  const stacks = [...new Set(history.map((entry) => entry.stack))].sort();
  const values = new Map<string, Array<[string, number]>>(metrics.map(([name]) => [name, []]));
  for (const stack of stacks) {
    const runs = history.filter((entry) => entry.stack === stack);
    const last = runs.at(-1)!;
    const success = runs.filter((entry) => entry.result === 'success').at(-1);
    values.get('stack_backup_last_run_timestamp_seconds')!.push([stack, seconds(last.endedAt)]);
    if (success) values.get('stack_backup_last_success_timestamp_seconds')!.push([stack, seconds(success.endedAt)]);
    values.get('stack_backup_last_run_success')!.push([stack, last.result === 'success' ? 1 : 0]);
    // Runs recorded before outcomes were kept count as unknown too.
    const known = last.outcome !== undefined && last.outcome !== 'unknown' && last.outcome !== 'completed';
    values.get('stack_backup_last_run_outcome_known')!.push([stack, known ? 1 : 0]);
    if (last.downtimeMs !== undefined) values.get('stack_backup_downtime_seconds')!.push([stack, last.downtimeMs / 1000]);
    if (last.backupMs !== undefined) values.get('stack_backup_backup_duration_seconds')!.push([stack, last.backupMs / 1000]);
    values.get('stack_backup_snapshot_mode')!.push([stack, last.mode === 'snapshot' ? 1 : 0]);
    if (last.snapshotMs !== undefined) values.get('stack_backup_snapshot_seconds')!.push([stack, last.snapshotMs / 1000]);
  }
  const lines: string[] = [];
  for (const [name, help] of metrics) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [stack, value] of values.get(name)!) lines.push(`${name}${label(stack)} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}
