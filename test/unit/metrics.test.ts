/**
 * src/metrics.ts renderMetrics: the Prometheus textfile (node_exporter textfile collector
 * format) made from the run history, and the file runBackups writes after each stack.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../../src/history.js';
import { renderMetrics } from '../../src/metrics.js';
import { createProgress } from '../../src/report.js';
import { runBackups } from '../../src/run.js';
import { globalConfig, removeTempRoots, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const names = [
  'stack_backup_last_run_timestamp_seconds',
  'stack_backup_last_success_timestamp_seconds',
  'stack_backup_last_run_success',
  'stack_backup_last_run_outcome_known',
  'stack_backup_downtime_seconds',
  'stack_backup_backup_duration_seconds',
  'stack_backup_snapshot_mode',
  'stack_backup_snapshot_seconds',
];

function entry(overrides: Partial<HistoryEntry> & { stack: string; endedAt: string }): HistoryEntry {
  return {
    run: 'run-1',
    startedAt: overrides.endedAt,
    result: 'success',
    outcome: 'success',
    notRestored: false,
    downtimeMs: 42_000,
    backupMs: 30_500,
    ...overrides,
  };
}

/** The sample lines of one metric, as "labels value". */
function samples(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`))
    .map((line) => line.slice(name.length));
}

/** Every line is a comment (# HELP/# TYPE) or `name{labels} number`, and the text ends in a newline. */
function expectTextfileFormat(text: string): void {
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    expect(line).toMatch(/^(# HELP [a-z_]+ .+|# TYPE [a-z_]+ gauge|[a-z_]+\{stack="(?:[^"\\\n]|\\["\\n])*"\} -?[0-9.e+]+)$/);
  }
}

describe('renderMetrics', () => {
  it('one # HELP and # TYPE gauge per metric, in that order, even with no history', () => {
    const text = renderMetrics([]);
    expectTextfileFormat(text);
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(names.length * 2);
    names.forEach((name, index) => {
      expect(lines[index * 2]).toMatch(new RegExp(`^# HELP ${name} \\S`));
      expect(lines[index * 2 + 1]).toBe(`# TYPE ${name} gauge`);
    });
  });

  it('one sample per stack and metric, from each stack\'s last run', () => {
    const history = [
      entry({ stack: 'beta', endedAt: '2024-03-01T02:00:00.000Z', downtimeMs: 10_000, backupMs: 5000 }),
      entry({ stack: 'alpha', endedAt: '2024-03-01T01:00:00.000Z' }),
      entry({ stack: 'beta', endedAt: '2024-03-02T02:00:00.000Z', downtimeMs: 12_500, backupMs: 7250 }),
    ];
    const text = renderMetrics(history);
    expectTextfileFormat(text);
    // Stop-mode runs have no snapshot time.
    for (const name of names.filter((name) => name !== 'stack_backup_snapshot_seconds')) {
      expect(samples(text, name).map((line) => line.split(' ')[0])).toEqual(['{stack="alpha"}', '{stack="beta"}']);
    }
    expect(samples(text, 'stack_backup_snapshot_seconds')).toEqual([]);
    const beta = Date.parse('2024-03-02T02:00:00.000Z') / 1000;
    expect(samples(text, 'stack_backup_last_run_timestamp_seconds')).toEqual([`{stack="alpha"} ${Date.parse('2024-03-01T01:00:00.000Z') / 1000}`, `{stack="beta"} ${beta}`]);
    expect(samples(text, 'stack_backup_last_success_timestamp_seconds')[1]).toBe(`{stack="beta"} ${beta}`);
    expect(samples(text, 'stack_backup_last_run_success')).toEqual(['{stack="alpha"} 1', '{stack="beta"} 1']);
    expect(samples(text, 'stack_backup_downtime_seconds')).toEqual(['{stack="alpha"} 42', '{stack="beta"} 12.5']);
    expect(samples(text, 'stack_backup_backup_duration_seconds')).toEqual(['{stack="alpha"} 30.5', '{stack="beta"} 7.25']);
    // Each metric's samples follow its own # TYPE line.
    const lines = text.split('\n');
    const typeAt = lines.indexOf('# TYPE stack_backup_downtime_seconds gauge');
    expect(lines.slice(typeAt + 1, typeAt + 3)).toEqual(['stack_backup_downtime_seconds{stack="alpha"} 42', 'stack_backup_downtime_seconds{stack="beta"} 12.5']);
  });

  it('a failed last run: success 0, and the last success timestamp is that of the earlier success', () => {
    const text = renderMetrics([
      entry({ stack: 'app', endedAt: '2024-03-01T00:00:00.000Z' }),
      entry({ stack: 'app', endedAt: '2024-03-02T00:00:00.000Z', result: 'failed', outcome: 'failed', error: 'boom' }),
    ]);
    expect(samples(text, 'stack_backup_last_run_success')).toEqual(['{stack="app"} 0']);
    expect(samples(text, 'stack_backup_last_run_timestamp_seconds')).toEqual([`{stack="app"} ${Date.parse('2024-03-02T00:00:00.000Z') / 1000}`]);
    expect(samples(text, 'stack_backup_last_success_timestamp_seconds')).toEqual([`{stack="app"} ${Date.parse('2024-03-01T00:00:00.000Z') / 1000}`]);
  });

  it('no success ever: no last success sample for that stack', () => {
    const text = renderMetrics([
      entry({ stack: 'app', endedAt: '2024-03-01T00:00:00.000Z', result: 'failed', outcome: 'failed' }),
      entry({ stack: 'other', endedAt: '2024-03-01T00:00:00.000Z' }),
    ]);
    expect(samples(text, 'stack_backup_last_success_timestamp_seconds')).toEqual([`{stack="other"} ${Date.parse('2024-03-01T00:00:00.000Z') / 1000}`]);
    expect(samples(text, 'stack_backup_last_run_timestamp_seconds')).toHaveLength(2);
    expect(text).toContain('# HELP stack_backup_last_success_timestamp_seconds');
  });

  it('outcome_known: 0 for unknown (exec driver), 1 when Duplicati\'s result was seen', () => {
    const text = renderMetrics([
      entry({ stack: 'a', endedAt: '2024-03-01T00:00:00.000Z', outcome: 'unknown' }),
      entry({ stack: 'b', endedAt: '2024-03-01T00:00:00.000Z', outcome: 'success' }),
      entry({ stack: 'c', endedAt: '2024-03-01T00:00:00.000Z', outcome: 'warning' }),
    ]);
    expect(samples(text, 'stack_backup_last_run_outcome_known')).toEqual(['{stack="a"} 0', '{stack="b"} 1', '{stack="c"} 1']);
    // Unknown is still a successful run: success is about the stack, not the outcome.
    expect(samples(text, 'stack_backup_last_run_success')).toEqual(['{stack="a"} 1', '{stack="b"} 1', '{stack="c"} 1']);
  });

  it('no downtime or duration recorded (failed before the stop): those samples are left out', () => {
    const text = renderMetrics([entry({ stack: 'app', endedAt: '2024-03-01T00:00:00.000Z', result: 'failed', outcome: 'failed', downtimeMs: undefined, backupMs: undefined })]);
    expect(samples(text, 'stack_backup_downtime_seconds')).toEqual([]);
    expect(samples(text, 'stack_backup_backup_duration_seconds')).toEqual([]);
    expect(samples(text, 'stack_backup_last_run_success')).toEqual(['{stack="app"} 0']);
  });

  it('label values escape backslashes, double quotes and newlines', () => {
    const text = renderMetrics([entry({ stack: 'a"b\\c\nd', endedAt: '2024-03-01T00:00:00.000Z' })]);
    expectTextfileFormat(text);
    expect(samples(text, 'stack_backup_last_run_success')).toEqual(['{stack="a\\"b\\\\c\\nd"} 1']);
    // One sample per metric but the snapshot time, which a stop-mode run has none of.
    expect(text.split('\n')).toHaveLength(names.length * 3);
  });
});

describe('snapshot mode in the metrics', () => {
  it('the mode per stack (1 snapshot, 0 stop) and the snapshots\' time apart from the downtime and the backup', () => {
    const text = renderMetrics([
      entry({ stack: 'files', endedAt: '2024-03-01T01:00:00.000Z', mode: 'snapshot', downtimeMs: 1500, backupMs: 600_000, snapshotMs: 120 }),
      entry({ stack: 'mail', endedAt: '2024-03-01T01:00:00.000Z' }),
    ]);
    expectTextfileFormat(text);
    expect(samples(text, 'stack_backup_snapshot_mode')).toEqual(['{stack="files"} 1', '{stack="mail"} 0']);
    expect(samples(text, 'stack_backup_snapshot_seconds')).toEqual(['{stack="files"} 0.12']);
    expect(samples(text, 'stack_backup_downtime_seconds')).toEqual(['{stack="files"} 1.5', '{stack="mail"} 42']);
    expect(samples(text, 'stack_backup_backup_duration_seconds')).toEqual(['{stack="files"} 600', '{stack="mail"} 30.5']);
  });
});

describe('metrics_file in a run', () => {
  it('runBackups writes the textfile from the history after the stack', async () => {
    const root = tempRoot({ 'stacks/app.yaml': 'duplicati_jobs: [app]\n' });
    const metricsFile = path.join(root, 'textfile', 'stack_backup.prom');
    const world = worldWithStack('active');
    world.duplicati.resultKind = 'Unknown';
    await runBackups({
      global: globalConfig({ root, file: path.join(root, 'stack-backup.yaml'), metricsFile }),
      stacks: [stackConfig({ file: path.join(root, 'stacks/app.yaml') })],
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    });
    const text = readFileSync(metricsFile, 'utf8');
    expectTextfileFormat(text);
    expect(samples(text, 'stack_backup_last_run_success')).toEqual(['{stack="app"} 1']);
    expect(samples(text, 'stack_backup_last_run_outcome_known')).toEqual(['{stack="app"} 0']);
    expect(samples(text, 'stack_backup_last_run_timestamp_seconds')).toEqual([`{stack="app"} ${Math.round(world.clock.now() / 1000)}`]);
  });
});
