/**
 * The monitoring view with Prometheus's own tools (Debian's `prometheus` and
 * `prometheus-node-exporter`, installed by scripts/ensure-prometheus-tools.sh from `npm test`):
 * monitoring/prometheus-rules.yml passes `promtool check rules` and its unit tests
 * (`promtool test rules`), and those tests fail when a rule is broken; a real node_exporter
 * reads the metrics file a run writes and serves every metric with its labels.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { appendHistory, readHistory } from '../../src/report/history.js';
import { createJournal } from '../../src/journal/journal.js';
import { metricNames } from '../../src/report/metrics.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { defaultOverdueMs } from '../../src/report/status.js';
import { addStack, globalConfig, removeTempRoots, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

const top = path.resolve(import.meta.dirname, '..', '..');
const rulesFile = path.join(top, 'monitoring', 'prometheus-rules.yml');
const rulesTestFile = path.join(top, 'monitoring', 'prometheus-rules.test.yml');

const started: ChildProcess[] = [];
afterAll(async () => {
  // Only the node_exporter this file started, by its PID.
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  removeTempRoots();
});

/** The tool's path, or a failure that says how to get it. */
function tool(name: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error(`${name} is not installed: run \`bash scripts/ensure-prometheus-tools.sh\` as root (Debian's prometheus and prometheus-node-exporter)`);
  return found;
}

/**
 * Runs promtool without blocking the test worker: a `promtool test rules` takes seconds (over 10 s
 * on a loaded 2-core machine), and fourteen of them run synchronously in a row held up the
 * worker's calls to vitest until one timed out ("Timeout calling onTaskUpdate") in a clean-clone run.
 */
function promtool(...args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool('promtool'), args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: promtoolTimeoutMs });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** promtool's own bound, and a test's: a rule test on a loaded machine outlasts the unit tests' 20 s. */
const promtoolTimeoutMs = 60_000;
const promtoolTestMs = promtoolTimeoutMs + 10_000;

interface RuleGroupFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>;
}

interface RuleTestFile {
  tests: Array<{ name: string; alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

const rules = () => parse(readFileSync(rulesFile, 'utf8')) as RuleGroupFile;
const alertNames = () => rules().groups.flatMap((group) => group.rules.flatMap((rule) => (rule.alert ? [rule.alert] : [])));

describe('monitoring/prometheus-rules.yml', () => {
  it('passes promtool check rules', { timeout: promtoolTestMs }, async () => {
    const result = await promtool('check', 'rules', rulesFile);
    expect(result.output).toContain(`SUCCESS: ${rules().groups[0]!.rules.length} rules found`);
    expect(result.code).toBe(0);
  });

  it('passes its unit tests (promtool test rules)', { timeout: promtoolTestMs }, async () => {
    const result = await promtool('test', 'rules', rulesTestFile);
    expect(result.output).toContain('SUCCESS');
    expect(result.code).toBe(0);
  });

  it('has every issue\'s alert, each tested firing and staying quiet', () => {
    expect(alertNames()).toEqual([
      'StackBackupLeftDown',
      'StackBackupRecoveryPending',
      'StackBackupSnapshotsLeft',
      'StackBackupFailed',
      'StackBackupNeverSucceeded',
      'StackBackupOverdue',
      'StackBackupMetricsStale',
      'StackBackupMetricsUnreadable',
      'StackBackupRestoreTestFailed',
      'StackBackupUntested',
    ]);
    const checks = (parse(readFileSync(rulesTestFile, 'utf8')) as RuleTestFile).tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const alert of alertNames()) {
      expect(checks.some((check) => check.alertname === alert && check.exp_alerts.length > 0), `${alert} is never shown firing`).toBe(true);
      expect(checks.some((check) => check.alertname === alert && check.exp_alerts.length === 0), `${alert} is never shown quiet`).toBe(true);
    }
  });

  it('reads only metrics stack-backup writes, and the threshold is written once: 26 h, as status uses by default', () => {
    const text = readFileSync(rulesFile, 'utf8');
    const used = new Set([...text.matchAll(/\bstack_backup_[a-z_]+\b/g)].map((match) => match[0]));
    for (const name of used) expect(metricNames, `${name} is not a metric stack-backup writes`).toContain(name);
    const threshold = [...text.matchAll(/\d+ \* 3600/g)];
    expect(threshold.map((match) => match[0])).toEqual([`${defaultOverdueMs / 3_600_000} * 3600`]);
    // Every rule that compares an age compares it with a recorded threshold: the backups' 26 h, or the restore tests' 8 days.
    const exprs = rules().groups[0]!.rules.map((rule) => rule.expr);
    expect(exprs.filter((expr) => expr.includes('time()')).every((expr) => expr.includes('stack_backup:overdue_after_seconds') || expr.includes('stack_backup:untested_after_seconds'))).toBe(true);
    expect([...text.matchAll(/\d+ \* 86400/g)].map((match) => match[0])).toEqual(['8 * 86400']);
  });

  // Each rule broken once: the unit tests must notice, naming the test that shows it.
  const breakages: Array<[string, string, string, string]> = [
    ['the threshold lowered to 24 h', 'vector(26 * 3600)', 'vector(24 * 3600)', 'overdue after 26 h, not before'],
    ['the threshold raised to 28 h', 'vector(26 * 3600)', 'vector(28 * 3600)', 'no run at all on a host, the timer is dead'],
    ['left down on the wrong value', 'expr: stack_backup_stack_restored == 0\n', 'expr: stack_backup_stack_restored == 1\n', 'a stack left down, until recover puts it back'],
    ['a left-down stack also reported as failed', 'stack_backup_last_run_success == 0 unless stack_backup_stack_restored == 0', 'stack_backup_last_run_success == 0', 'a stack left down, until recover puts it back'],
    ['recovery pending counted from 3', 'stack_backup_recovery_pending - stack_backup_snapshots_left > 0', 'stack_backup_recovery_pending - stack_backup_snapshots_left > 2', 'recovery pending after a killed run, until recover'],
    ['a snapshot kept paged as a stack down', 'stack_backup_recovery_pending - stack_backup_snapshots_left > 0', 'stack_backup_recovery_pending > 0', 'recovery pending after a killed run, until recover'],
    ['snapshots left not reported', 'expr: stack_backup_snapshots_left > 0', 'expr: stack_backup_snapshots_left > 1', 'recovery pending after a killed run, until recover'],
    ['never succeeded for stacks no longer configured', 'stack_backup_stack_configured == 1 unless', 'stack_backup_stack_configured unless', 'a configured stack never backed up'],
    ['staleness from the oldest run instead of the newest', 'max without (stack)', 'min without (stack)', 'no run at all on a host, the timer is dead'],
    ['an unreadable file when there is none', 'node_textfile_scrape_error > 0', 'node_textfile_scrape_error >= 0', 'the metrics file cannot be read'],
    ['a failed restore test on the wrong value', 'expr: stack_backup_restore_test_success == 0', 'expr: stack_backup_restore_test_success == 1', 'a restore test that fails, and one that has not passed for over 8 days'],
    ['untested after 6 days', 'vector(8 * 86400)', 'vector(6 * 86400)', 'a restore test that fails, and one that has not passed for over 8 days'],
    ['never passed not counted as untested', ' or (stack_backup_restore_test_success unless stack_backup_restore_test_timestamp_seconds)', '', 'restore tests that never passed, and a stack without them'],
  ];
  it.each(breakages)('fails when broken: %s', { timeout: promtoolTestMs }, async (_what, from, to, test) => {
    const folder = tempRoot();
    const original = readFileSync(rulesFile, 'utf8');
    expect(original).toContain(from);
    writeFileSync(path.join(folder, 'prometheus-rules.yml'), original.replace(from, to));
    copyFileSync(rulesTestFile, path.join(folder, 'prometheus-rules.test.yml'));
    const result = await promtool('test', 'rules', path.join(folder, 'prometheus-rules.test.yml'));
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('FAILED');
    expect(result.output).toContain(`name: ${test},`);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts node_exporter with only its textfile collector on a free loopback port; resolves once it answers. */
async function startNodeExporter(directory: string): Promise<{ scrape: () => Promise<string> }> {
  const binary = tool('prometheus-node-exporter');
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const address = `127.0.0.1:${await freePort()}`;
    const child = spawn(binary, ['--web.listen-address', address, '--collector.disable-defaults', '--collector.textfile', '--collector.textfile.directory', directory, '--web.disable-exporter-metrics'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    started.push(child);
    let log = '';
    child.stderr!.on('data', (chunk) => (log += chunk));
    const scrape = async () => (await fetch(`http://${address}/metrics`)).text();
    for (let wait = 0; wait < 100 && child.exitCode === null; wait += 1) {
      try {
        await scrape();
        return { scrape };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // The port was taken between the probe and the start: try another.
    if (child.exitCode !== null && /address already in use/.test(log)) continue;
    throw new Error(`node_exporter did not answer on ${address}: ${log}`);
  }
  throw new Error('no free loopback port for node_exporter');
}

/** The samples of a text exposition whose name starts with `prefix`, as "name{labels}" -> value. */
function samplesOf(text: string, prefix: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('the metrics file through a real node_exporter', () => {
  it('every metric with its HELP, TYPE, labels and values, and no collector error; a damaged file is one', async () => {
    const root = tempRoot({ 'stacks/app.yaml': 'duplicati_jobs: [app]\n', 'stacks/down.yaml': 'duplicati_jobs: [down]\n', 'stacks/fresh.yaml': 'duplicati_jobs: [fresh]\n', 'stacks/files.yaml': 'duplicati_jobs: [files]\n' });
    const textfiles = path.join(root, 'textfile');
    mkdirSync(textfiles);
    const metricsFile = path.join(textfiles, 'stack-backup.prom');
    // An earlier snapshot-mode run of files, and a run that died leaving an undo of a stack since removed.
    appendHistory(root, {
      stack: 'files',
      run: 'earlier',
      startedAt: '2024-03-01T03:00:00.000Z',
      endedAt: '2024-03-01T03:10:00.000Z',
      result: 'success',
      outcome: 'warning',
      notRestored: false,
      mode: 'snapshot',
      downtimeMs: 1200,
      backupMs: 540_000,
      snapshotMs: 90,
      restoreTest: { passed: true, tested: 20, mismatches: 0, summary: 'restore test: 20 of 20 files identical (1.2 MB) in 3.4 s' },
    });
    createJournal(root, 'dead-run').add('gone "quoted"', { kind: 'unfreeze', socket: 'gone.socket', service: undefined });
    const world = addStack(worldWithStack('active'), 'down');
    world.failing.add('start down-stack.service');
    await runBackups({
      global: globalConfig({ root, file: path.join(root, 'stack-backup.yaml'), metricsFile }),
      stacks: [stackConfig({ file: path.join(root, 'stacks/app.yaml') }), stackConfig({ name: 'down', unit: 'down-stack.service', file: path.join(root, 'stacks/down.yaml') })],
      configured: ['app', 'down', 'files', 'fresh'],
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    });
    const written = readFileSync(metricsFile, 'utf8');
    const exporter = await startNodeExporter(textfiles);
    const scraped = await exporter.scrape();

    expect(scraped).toMatch(/^node_textfile_scrape_error 0$/m);
    expect(scraped).toMatch(/^node_textfile_mtime_seconds\{file="[^"]*stack-backup\.prom"\} \S+$/m);
    for (const name of metricNames) {
      expect(scraped).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
      expect(scraped).toContain(`# TYPE ${name} gauge\n`);
    }
    // node_exporter serves exactly the samples of the file (numbers compared as numbers: it may write 1.7e+09).
    const served = samplesOf(scraped, 'stack_backup_');
    expect(served).toEqual(samplesOf(written, 'stack_backup_'));
    // Every metric has samples, and what the alerts read is there with its stack label.
    for (const name of metricNames) expect([...served.keys()].some((key) => key.startsWith(`${name}{`)), `${name} has no sample`).toBe(true);
    expect(served.get('stack_backup_stack_restored{stack="down"}')).toBe(0);
    expect(served.get('stack_backup_stack_restored{stack="app"}')).toBe(1);
    expect(served.get('stack_backup_recovery_pending{stack="down"}')).toBe(1);
    expect(served.get('stack_backup_recovery_pending{stack="gone \\"quoted\\""}')).toBe(1);
    expect(served.get('stack_backup_stack_configured{stack="gone \\"quoted\\""}')).toBe(0);
    expect(served.get('stack_backup_stack_configured{stack="fresh"}')).toBe(1);
    expect(served.has('stack_backup_last_success_timestamp_seconds{stack="fresh"}')).toBe(false);
    expect(served.get('stack_backup_last_run_success{stack="down"}')).toBe(0);
    expect(served.get('stack_backup_snapshot_seconds{stack="files"}')).toBe(0.09);
    expect(served.get('stack_backup_restore_test_timestamp_seconds{stack="files"}')).toBe(Math.round(Date.parse('2024-03-01T03:10:00.000Z') / 1000));
    expect(served.get('stack_backup_restore_test_files{stack="files"}')).toBe(20);
    expect(served.get('stack_backup_restore_test_mismatches{stack="files"}')).toBe(0);
    expect(served.has('stack_backup_restore_test_success{stack="app"}')).toBe(false);
    const appRun = readHistory(root).find((run) => run.stack === 'app')!;
    expect(served.get('stack_backup_last_success_timestamp_seconds{stack="app"}')).toBe(Math.round(Date.parse(appRun.endedAt) / 1000));

    // The signal StackBackupMetricsUnreadable reads: a file node_exporter cannot parse.
    writeFileSync(path.join(textfiles, 'damaged.prom'), 'stack_backup_last_run_success{stack="x" 1\n');
    expect(await exporter.scrape()).toMatch(/^node_textfile_scrape_error 1$/m);
  });
});
