/**
 * src/report/metrics.ts renderMetrics: the Prometheus textfile (node_exporter textfile collector
 * format) made from the run history, and the file runBackups writes after each stack.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readHistory, type HistoryEntry } from '../../src/report/history.js';
import { createJournal, type JournalEntry } from '../../src/journal/journal.js';
import { renderMetrics as renderSources } from '../../src/report/metrics.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { stackStatuses, statusVerdict } from '../../src/report/status.js';
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
  'stack_backup_stack_restored',
  'stack_backup_recovery_pending',
  'stack_backup_snapshots_left',
  'stack_backup_restore_test_timestamp_seconds',
  'stack_backup_restore_test_success',
  'stack_backup_restore_test_files',
  'stack_backup_restore_test_mismatches',
  'stack_backup_stack_configured',
];

/** The restore test's metrics: a run without a test has no sample of them. */
const restoreTestNames = names.filter((name) => name.startsWith('stack_backup_restore_test_'));

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

/** The metrics of a history whose stacks are all configured, with nothing in the journal. */
function renderMetrics(history: HistoryEntry[]): string {
  return renderSources({ configured: [...new Set(history.map((run) => run.stack))], history, pending: [] });
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
    // Stop-mode runs have no snapshot time; runs without a restore test none of its metrics.
    for (const name of names.filter((name) => name !== 'stack_backup_snapshot_seconds' && !restoreTestNames.includes(name))) {
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
    // One sample per metric but the snapshot time, which a stop-mode run has none of, and the restore test's (none ran).
    expect(text.split('\n')).toHaveLength(names.length * 3 - restoreTestNames.length);
  });

  it("a restore test: the time of the last passing one, and the last one's files and mismatches", () => {
    const passed = { passed: true, tested: 20, mismatches: 0, summary: 'restore test: 20 of 20 files identical (1.2 MB) in 3.4 s' };
    const failed = { passed: false, tested: 20, mismatches: 2, summary: 'restore test: 18 of 20 files identical (1.0 MB) in 3.1 s' };
    const text = renderMetrics([entry({ stack: 'app', endedAt: '2024-03-01T00:00:00.000Z', restoreTest: passed }), entry({ stack: 'app', endedAt: '2024-03-02T00:00:00.000Z', result: 'failed', restoreTest: failed })]);
    expect(samples(text, 'stack_backup_restore_test_timestamp_seconds')).toEqual([`{stack="app"} ${Date.parse('2024-03-01T00:00:00.000Z') / 1000}`]);
    expect(samples(text, 'stack_backup_restore_test_success')).toEqual(['{stack="app"} 0']);
    expect(samples(text, 'stack_backup_restore_test_files')).toEqual(['{stack="app"} 20']);
    expect(samples(text, 'stack_backup_restore_test_mismatches')).toEqual(['{stack="app"} 2']);
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

describe('which stacks show, and what the journal adds', () => {
  const restoreUnit = (stack: string, run: string): JournalEntry => ({
    id: `${stack}-${run}`,
    stack,
    run,
    pid: 1,
    recordedAt: '2024-03-01T00:00:00.000Z',
    undo: {
      kind: 'restore-unit',
      unit: `${stack}-stack.service`,
      stateBefore: 'active',
      start: true,
      startTimeoutMs: 120_000,
      preStart: { phase: 'pre_start', commands: [], environment: {}, cwd: '/', timeoutMs: 1000 },
    },
  });

  it('every configured stack, run or not; a stack removed from stacks/ is gone; one only the journal holds shows as not configured', () => {
    const text = renderSources({
      configured: ['fresh', 'kept'],
      history: [entry({ stack: 'kept', endedAt: '2024-03-01T00:00:00.000Z' }), entry({ stack: 'removed', endedAt: '2024-03-01T00:00:00.000Z' })],
      pending: [restoreUnit('orphan', 'dead-run')],
    });
    expectTextfileFormat(text);
    expect(text).not.toContain('stack="removed"');
    expect(samples(text, 'stack_backup_stack_configured')).toEqual(['{stack="fresh"} 1', '{stack="kept"} 1', '{stack="orphan"} 0']);
    expect(samples(text, 'stack_backup_recovery_pending')).toEqual(['{stack="fresh"} 0', '{stack="kept"} 0', '{stack="orphan"} 1']);
    // A stack that never ran has no run to describe: no last run, success or restored sample.
    expect(samples(text, 'stack_backup_last_run_timestamp_seconds')).toEqual([`{stack="kept"} ${Date.parse('2024-03-01T00:00:00.000Z') / 1000}`]);
    expect(samples(text, 'stack_backup_stack_restored')).toEqual(['{stack="kept"} 1']);
  });

  it('restored 0 while the undo that failed in the last run waits in the journal; 1 once recover did it, or when it was an older run\'s', () => {
    const history = [entry({ stack: 'app', run: 'night', endedAt: '2024-03-01T00:00:00.000Z', result: 'failed', outcome: 'failed', notRestored: true })];
    const left = renderSources({ configured: ['app'], history, pending: [restoreUnit('app', 'night')] });
    expect(samples(left, 'stack_backup_stack_restored')).toEqual(['{stack="app"} 0']);
    expect(samples(left, 'stack_backup_recovery_pending')).toEqual(['{stack="app"} 1']);
    const recovered = renderSources({ configured: ['app'], history, pending: [] });
    expect(samples(recovered, 'stack_backup_stack_restored')).toEqual(['{stack="app"} 1']);
    expect(samples(recovered, 'stack_backup_last_run_success')).toEqual(['{stack="app"} 0']);
    // A later run that restored the stack: the entry of a run that died before it says nothing of this run.
    const later = renderSources({ configured: ['app'], history: [entry({ stack: 'app', run: 'today', endedAt: '2024-03-02T00:00:00.000Z' })], pending: [restoreUnit('app', 'night')] });
    expect(samples(later, 'stack_backup_stack_restored')).toEqual(['{stack="app"} 1']);
    expect(samples(later, 'stack_backup_recovery_pending')).toEqual(['{stack="app"} 1']);
  });

  it('a snapshot kept for a Duplicati task: recovery pending and snapshots left alike, the stack restored', () => {
    const kept: JournalEntry = {
      id: 'snap',
      stack: 'files',
      run: 'night',
      pid: 1,
      recordedAt: '2024-03-01T00:00:00.000Z',
      undo: { kind: 'remove-snapshot', driver: 'btrfs', source: '/srv/files', target: '/srv/snap/files', jobs: ['files'] },
    };
    const text = renderSources({
      configured: ['files'],
      history: [entry({ stack: 'files', run: 'night', endedAt: '2024-03-01T00:00:00.000Z', result: 'failed', outcome: 'failed', mode: 'snapshot', snapshotMs: 80 })],
      pending: [kept, restoreUnit('files', 'older')],
    });
    expect(samples(text, 'stack_backup_recovery_pending')).toEqual(['{stack="files"} 2']);
    expect(samples(text, 'stack_backup_snapshots_left')).toEqual(['{stack="files"} 1']);
    expect(samples(text, 'stack_backup_stack_restored')).toEqual(['{stack="files"} 1']);
  });
});

describe('the same facts as the summary and status', () => {
  it('a run whose unit would not start again: FAILED, NOT RESTORED in the summary, restored 0 and recovery pending in the metrics, left down in status; the next run\'s recovery shows at once', async () => {
    const root = tempRoot({ 'stacks/app.yaml': 'duplicati_jobs: [app]\n', 'stacks/other.yaml': 'duplicati_jobs: [other]\n' });
    const metricsFile = path.join(root, 'textfile', 'stack_backup.prom');
    const world = worldWithStack('active');
    world.failing.add('start app-stack.service');
    let summary = '';
    const run = () =>
      runBackups({
        global: globalConfig({ root, file: path.join(root, 'stack-backup.yaml'), metricsFile }),
        stacks: [stackConfig({ file: path.join(root, 'stacks/app.yaml') })],
        configured: ['app', 'other'],
        adapters: world.adapters(),
        progress: createProgress({ write: () => {} }, world.clock),
        output: { write: (text: string) => (summary += text) },
        signal: new AbortController().signal,
      });
    await run();
    expect(summary).toMatch(/^app\s+FAILED, NOT RESTORED/m);
    const text = readFileSync(metricsFile, 'utf8');
    expect(samples(text, 'stack_backup_stack_restored')).toEqual(['{stack="app"} 0']);
    expect(samples(text, 'stack_backup_recovery_pending')).toEqual(['{stack="app"} 1', '{stack="other"} 0']);
    expect(samples(text, 'stack_backup_stack_configured')).toEqual(['{stack="app"} 1', '{stack="other"} 1']);
    const statuses = stackStatuses(['app', 'other'], readHistory(root), createJournal(root, '').pending(), false, world.clock.now());
    expect(statuses.map((status) => [status.stack, status.restored])).toEqual([['app', false], ['other', null]]);
    expect(statusVerdict(statuses, 26 * 3_600_000, world.clock.now())).toBe('2 stacks: 1 left down (app), 1 never backed up (other)');

    // The next run recovers first (the unit starts now) and writes the file before the stack's own run.
    world.failing.delete('start app-stack.service');
    world.units.get('app-stack.service')!.active = 'inactive';
    let beforeStop: string | undefined;
    world.onAction = (action) => {
      if (action === 'stop app-stack.service' && beforeStop === undefined) beforeStop = readFileSync(metricsFile, 'utf8');
    };
    await run();
    expect(samples(beforeStop!, 'stack_backup_stack_restored')).toEqual(['{stack="app"} 1']);
    expect(samples(beforeStop!, 'stack_backup_recovery_pending')).toEqual(['{stack="app"} 0', '{stack="other"} 0']);
    expect(samples(beforeStop!, 'stack_backup_last_run_success')).toEqual(['{stack="app"} 0']);
    expect(samples(readFileSync(metricsFile, 'utf8'), 'stack_backup_last_run_success')).toEqual(['{stack="app"} 1']);
  });
});
