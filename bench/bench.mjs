// npm run bench: downtime and its parts per stack, stack-backup against a shell script that
// polls every 5 s, in the real world of the test suite; then `stack-backup list` over 200
// stack files against bare node startup. Prints Markdown tables (also bench/results.md).
// Both drivers are measured before and after in one run: "before" is BENCH_BEFORE_REF (default
// main) built aside into $WORLD_DIR/app-before; BENCH_BEFORE_REF=none skips it.
// BENCH_STACKS (comma-separated) picks the stacks, BENCH_RUNS the runs per cell; BENCH_SNAPSHOT
// the stacks for snapshot mode against stop mode (none: skip), BENCH_SNAPSHOT_SIZES their sizes in MB.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const checkout = path.resolve(here, '..');
const worldDir = process.env.WORLD_DIR ?? '/var/tmp/stack-backup-world';
const runs = Number(process.env.BENCH_RUNS ?? 5);
const jobSeconds = Number(process.env.BENCH_JOB_SECONDS ?? 2);
const stacks = (process.env.BENCH_STACKS ?? 'composeapp,ondemand,plainapp').split(',').filter(Boolean);
const beforeRef = process.env.BENCH_BEFORE_REF ?? 'main';

const world = Object.fromEntries(
  readFileSync(path.join(worldDir, 'env'), 'utf8')
    .split('\n')
    .map((line) => /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line))
    .filter(Boolean)
    .map((match) => [match[1], match[2].replace(/^"(.*)"$/, '$1')]),
);
const asUser = (...argv) => spawnSync(world.WORLD_AS_USER, argv, { encoding: 'utf8' });
const script = (name, ...args) => execFileSync('bash', [path.join(checkout, 'test', 'world', name), ...args], { encoding: 'utf8' });

function records() {
  return readFileSync(world.STANDIN_RECORDS, 'utf8')
    .split('\n')
    .filter((line) => /^\d+ /.test(line))
    .map((line) => {
      const [task, id, name, start, end, verdict] = line.split(/\s+/);
      return { task: Number(task), id, name, start: Number(start), end: Number(end), verdict };
    });
}

/** When the stack's last container died between two instants (podman events). */
function lastDied(stack, from, to) {
  const result = asUser(
    'env', '-u', 'CONTAINER_HOST', 'podman', 'events', '--stream=false', '--since', String(Math.floor(from / 1000) - 1),
    '--until', String(Math.ceil(to / 1000) + 1), '--filter', 'event=died', '--format', '{{.Time}} {{.Name}}',
  );
  let latest;
  for (const line of result.stdout.split('\n')) {
    const match = /^(\S+ \S+) \S+ \S+ (\S+)$/.exec(line.trim());
    if (!match || !match[2].startsWith(stack)) continue;
    const when = Date.parse(match[1].replace(' ', 'T').replace(/(\.\d{3})\d*/, '$1') + 'Z');
    if (when >= from && when <= to && (latest === undefined || when > latest)) latest = when;
  }
  return latest;
}

function freshWorld() {
  script('reset.sh', '--quiet');
  script('standin.sh', 'set', 'duration', String(jobSeconds));
}

/** Writes stack-backup.yaml for the driver under test (exec: the defaults, no file). */
function useDriver(driver) {
  const file = path.join(world.WORLD_ROOT, 'stack-backup.yaml');
  const passwordFile = path.join(world.WORLD_ROOT, 'duplicati-password');
  rmSync(file, { force: true });
  if (driver !== 'api') return;
  writeFileSync(passwordFile, `${world.DUPLICATI_API_PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(file, `duplicati:\n  driver: api\n  url: ${world.DUPLICATI_API_URL}\n  password_file: ${passwordFile}\n`);
  for (const written of [file, passwordFile]) execFileSync('chown', [`${world.WORLD_UID}:${world.WORLD_GID}`, written]);
}

/**
 * Builds BENCH_BEFORE_REF aside, where the world's user can run it (world-readable, with the
 * installed app's node_modules), and returns its cli.js; undefined when skipped.
 */
function buildBefore() {
  if (beforeRef === 'none') return undefined;
  const target = path.join(worldDir, 'app-before');
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  execFileSync('bash', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, 'archive', checkout, beforeRef, target]);
  execFileSync('ln', ['-s', path.join(checkout, 'node_modules'), path.join(target, 'node_modules')]);
  execFileSync(process.execPath, [path.join(checkout, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(target, 'tsconfig.json')], { cwd: target });
  rmSync(path.join(target, 'node_modules'));
  execFileSync('ln', ['-s', path.join(world.WORLD_APP ?? path.join(worldDir, 'app'), 'node_modules'), path.join(target, 'node_modules')]);
  execFileSync('chmod', ['-R', 'a+rX', target]);
  return path.join(target, 'dist', 'cli.js');
}

function measureStackBackup(stack, cli = world.WORLD_CLI) {
  freshWorld();
  const before = Date.now();
  const run = asUser(process.execPath, cli, '--root', world.WORLD_ROOT, stack);
  if (run.status !== 0) throw new Error(`stack-backup ${stack} exited ${run.status}: ${run.stderr}`);
  const logFile = readdirSync(path.join(world.WORLD_ROOT, 'logs')).filter((name) => name.startsWith(`backup-${stack}-`)).sort().at(-1);
  const lines = readFileSync(path.join(world.WORLD_ROOT, 'logs', logFile), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const ofThisRun = lines.filter((line) => line.run === lines.at(-1).run);
  const end = ofThisRun.find((line) => line.msg === 'stack run end');
  const stopEnd = Date.parse(ofThisRun.find((line) => line.step === 'stop unit' && line.event === 'end').time);
  const job = records().find((record) => record.name === stack && record.start >= before);
  const died = lastDied(stack, before, Date.now());
  return {
    downtime: end.downtime_ms,
    stop: end.unit_stop_ms,
    containers: died === undefined ? 0 : Math.max(0, died - stopEnd),
    job: job.end - job.start,
    start: end.unit_start_ms,
    verdict: job.verdict,
  };
}

function measureBaseline(stack) {
  freshWorld();
  const run = asUser('sh', path.join(checkout, 'bench', 'baseline.sh'), stack, stack);
  if (run.status !== 0) throw new Error(`baseline ${stack} exited ${run.status}: ${run.stderr}`);
  const at = Object.fromEntries(run.stdout.trim().split('\n').map((line) => line.split(' ')).map(([event, ms]) => [event, Number(ms)]));
  const job = records().find((record) => record.name === stack && record.start >= at.stop_begin);
  const died = lastDied(stack, at.stop_begin, at.start_end);
  return {
    downtime: at.start_end - at.stop_begin,
    stop: at.stop_end - at.stop_begin,
    containers: died === undefined ? 0 : Math.max(0, died - at.stop_end),
    job: job.end - job.start,
    start: at.start_end - at.job_done,
    verdict: job.verdict,
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const spread = (values) => Math.max(...values) - Math.min(...values);
const cell = (values) => `${median(values).toFixed(0)} ± ${(spread(values) / 2).toFixed(0)}`;

function summarise(tool, stack, samples) {
  const overheads = samples.map((sample) => sample.downtime - (sample.stop + sample.containers + sample.job + sample.start));
  const pick = (key) => samples.map((sample) => sample[key]);
  return {
    row: `| ${tool} | ${stack} | ${cell(pick('downtime'))} | ${cell(pick('stop'))} | ${cell(pick('containers'))} | ${cell(pick('job'))} | ${cell(pick('start'))} | **${cell(overheads)}** | ${samples.filter((sample) => sample.verdict === 'CLEAN').length}/${samples.length} |`,
    overhead: median(overheads),
  };
}

function timeCommand(argv, times) {
  const samples = [];
  for (let index = 0; index < times; index++) {
    const started = process.hrtime.bigint();
    const result = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.status !== 0) throw new Error(`${argv.join(' ')}: exit ${result.status} ${result.stderr}`);
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return samples;
}

const lines = [];
const say = (text) => {
  lines.push(text);
  console.log(text);
};

const beforeCli = stacks.length > 0 ? buildBefore() : undefined;
if (stacks.length > 0) {
  say(`Downtime per stack, in ms: median ± half the spread over ${runs} runs; stand-in job of ${jobSeconds} s. Overhead = downtime - (unit stop + container exit after the stop + job + unit start).${beforeCli ? ` "before": ${beforeRef}; "after": this checkout.` : ''}`);
  say('');
  say('| tool | stack | downtime | unit stop | containers exit | job | unit start | overhead | CLEAN |');
  say('|---|---|---|---|---|---|---|---|---|');
  const overheads = {};
  const aims = { exec: 400, api: 100 };
  const worstByDriver = { exec: 0, api: 0 };
  for (const stack of stacks) {
    for (const driver of ['exec', 'api']) {
      const label = driver === 'exec' ? 'default: exec driver' : 'api driver';
      if (beforeCli) {
        useDriver(driver);
        const old = Array.from({ length: runs }, () => measureStackBackup(stack, beforeCli));
        say(summarise(`stack-backup before (${label})`, stack, old).row);
      }
      useDriver(driver);
      const now = Array.from({ length: runs }, () => measureStackBackup(stack));
      const summary = summarise(`stack-backup${beforeCli ? ' after' : ''} (${label})`, stack, now);
      say(summary.row);
      worstByDriver[driver] = Math.max(worstByDriver[driver], summary.overhead);
      if (driver === 'exec') overheads[stack] = summary.overhead;
    }
    useDriver('exec');
    const baseline = Array.from({ length: runs }, () => measureBaseline(stack));
    say(summarise('5 s polling script', stack, baseline).row);
  }
  useDriver('exec');
  script('reset.sh', '--quiet');
  say('');
  const worst = Math.max(...Object.values(overheads));
  say(`Target: median overhead under 300 ms per stack with default settings: ${worst < 300 ? 'met' : 'NOT met'} (worst stack ${worst.toFixed(0)} ms).`);
  for (const driver of ['exec', 'api']) {
    say(`Aim (issue 10): ${driver} driver overhead at most ${aims[driver]} ms: ${worstByDriver[driver] <= aims[driver] ? 'met' : 'NOT met'} (worst stack ${worstByDriver[driver].toFixed(0)} ms).`);
  }
}

// Snapshot mode beside stop mode, on one stack at two data sizes with the same number of files:
// the stand-in's job reads all of it. Downtime in snapshot mode must not grow with the bytes and
// stay within 0.3 s of unit stop + container wait + unit start (BENCH_SNAPSHOT=none skips it).
const snapshotStacks = (process.env.BENCH_SNAPSHOT ?? 'snapbtrfs,snapxfs').split(',').filter((name) => name && name !== 'none');
const snapshotSizes = (process.env.BENCH_SNAPSHOT_SIZES ?? '50,1024').split(',').map(Number);
const snapshotFiles = Number(process.env.BENCH_SNAPSHOT_FILES ?? 200);
const snapshotRuns = Number(process.env.BENCH_SNAPSHOT_RUNS ?? 3);
const snapshotPaths = {
  snapbtrfs: { driver: 'btrfs', source: path.join(world.BTRFS_DIR ?? '', 'snapbtrfs'), target: path.join(world.BTRFS_DIR ?? '', 'snapshots', 'snapbtrfs') },
  snapxfs: { driver: 'reflink', source: path.join(world.XFS_DIR ?? '', 'snapxfs'), target: path.join(world.XFS_DIR ?? '', 'snapshots', 'snapxfs') },
};

function writeStackFile(stack, text) {
  const file = path.join(world.WORLD_ROOT, 'stacks', `${stack}.yaml`);
  writeFileSync(file, text);
  execFileSync('chown', [`${world.WORLD_UID}:${world.WORLD_GID}`, file]);
}

/** The world at baseline with the stack's data filled to this size (once per size: filling 1 GB takes a while). */
function fillData(stack, megabytes) {
  script('reset.sh', '--quiet');
  script('fill-data.sh', stack, String(megabytes), String(snapshotFiles));
  // The job's length is its one full read of the data (at least 1 s).
  script('standin.sh', 'set', 'duration', '1');
  // Stop mode backs up the live data (the stand-in mounts it at /live/<stack>), not a snapshot.
  script('standin.sh', 'add-job', liveJob[stack].id, liveJob[stack].name, `/live/${stack}`);
}

const liveJob = { snapbtrfs: { id: '40', name: 'snapbtrfs-live' }, snapxfs: { id: '41', name: 'snapxfs-live' } };

function measureMode(stack, mode) {
  const settings = snapshotPaths[stack];
  writeStackFile(
    stack,
    mode === 'snapshot'
      ? `duplicati_jobs: [${stack}]\nsnapshot:\n  driver: ${settings.driver}\n  paths:\n    - source: ${settings.source}\n      target: ${settings.target}\n`
      : `duplicati_jobs: [${liveJob[stack].name}]\n`,
  );
  const before = Date.now();
  const run = asUser(process.execPath, world.WORLD_CLI, '--root', world.WORLD_ROOT, stack);
  if (run.status !== 0) throw new Error(`stack-backup ${stack} (${mode} mode) exited ${run.status}: ${run.stdout}${run.stderr}`);
  const logFile = readdirSync(path.join(world.WORLD_ROOT, 'logs')).filter((name) => name.startsWith(`backup-${stack}-`)).sort().at(-1);
  const lines = readFileSync(path.join(world.WORLD_ROOT, 'logs', logFile), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const end = lines.filter((line) => line.msg === 'stack run end').at(-1);
  const job = records().find((record) => (record.name === stack || record.name === liveJob[stack].name) && record.start >= before);
  return {
    downtime: end.downtime_ms,
    parts: end.unit_stop_ms + end.containers_wait_ms + end.unit_start_ms,
    snapshot: end.snapshot_ms ?? 0,
    backup: end.backup_ms,
    verdict: job?.verdict ?? 'none',
  };
}

if (snapshotStacks.length > 0) {
  say('');
  say(`Snapshot mode beside stop mode: downtime in ms, median ± half the spread over ${snapshotRuns} runs; ${snapshotFiles} files; the job reads all of them. "stop+wait+start" is that run's own unit stop, container wait and unit start; "extra" is downtime minus that.`);
  say('');
  say('| stack | data | mode | downtime | stop+wait+start | extra | snapshots | backup | CLEAN |');
  say('|---|---|---|---|---|---|---|---|---|');
  const extras = [];
  const downtimes = {};
  for (const stack of snapshotStacks) {
    for (const megabytes of snapshotSizes) {
      fillData(stack, megabytes);
      for (const mode of ['stop', 'snapshot']) {
        const samples = Array.from({ length: snapshotRuns }, () => measureMode(stack, mode));
        const pick = (key) => samples.map((sample) => sample[key]);
        const extra = samples.map((sample) => sample.downtime - sample.parts);
        if (mode === 'snapshot') {
          extras.push(median(extra));
          (downtimes[stack] ??= []).push(median(pick('downtime')));
        }
        say(`| ${stack} | ${megabytes} MB | ${mode} | ${cell(pick('downtime'))} | ${cell(pick('parts'))} | ${cell(extra)} | ${mode === 'snapshot' ? cell(pick('snapshot')) : '-'} | ${cell(pick('backup'))} | ${samples.filter((sample) => sample.verdict === 'CLEAN').length}/${samples.length} |`);
      }
    }
  }
  script('reset.sh', '--quiet');
  resetStackFiles();
  say('');
  const worstExtra = Math.max(...extras);
  say(`Target: snapshot-mode downtime within 300 ms of stop + container wait + start: ${worstExtra <= 300 ? 'met' : 'NOT met'} (worst ${worstExtra.toFixed(0)} ms).`);
  for (const [stack, values] of Object.entries(downtimes)) {
    const growth = values.at(-1) - values[0];
    say(`Target: ${stack}'s snapshot-mode downtime does not grow with the bytes (${snapshotSizes.join(' MB -> ')} MB): ${growth <= 300 ? 'met' : 'NOT met'} (${growth >= 0 ? '+' : ''}${growth.toFixed(0)} ms).`);
  }
}

/** The snapshot stacks' files are the bench's own: none is left in the world's root. */
function resetStackFiles() {
  for (const stack of snapshotStacks) rmSync(path.join(world.WORLD_ROOT, 'stacks', `${stack}.yaml`), { force: true });
}

const root = mkdtempSync(path.join(os.tmpdir(), 'stack-backup-bench-'));
mkdirSync(path.join(root, 'stacks'));
// A root as a user has it: with logs/, where the parse cache lives.
mkdirSync(path.join(root, 'logs'));
for (let index = 1; index <= 200; index++) {
  writeFileSync(
    path.join(root, 'stacks', `stack${String(index).padStart(3, '0')}.yaml`),
    `duplicati_jobs: [job${index}]\nrestore_policy: always\nhooks:\n  pre_stop: echo before\n  post_start: [echo after, echo again]\n`,
  );
}
const node = timeCommand([process.execPath, '-e', '0'], 15);
// The first run parses every file and fills the cache; the others find them unchanged.
const [firstList] = timeCommand([process.execPath, path.join(checkout, 'dist', 'cli.js'), '--root', root, 'list'], 1);
const list = timeCommand([process.execPath, path.join(checkout, 'dist', 'cli.js'), '--root', root, 'list'], 15);
rmSync(root, { recursive: true, force: true });
const ratio = median(list) / median(node);
say('');
say('| command | median ms | spread ms |');
say('|---|---|---|');
say(`| node -e 0 | ${median(node).toFixed(0)} | ${spread(node).toFixed(0)} |`);
say(`| stack-backup list (200 stack files, unchanged since the last command) | ${median(list).toFixed(0)} | ${spread(list).toFixed(0)} |`);
say(`| stack-backup list (200 stack files, first run: all parsed) | ${firstList.toFixed(0)} | - |`);
say('');
say(`Target: list under 2x bare node startup: ${ratio < 2 ? 'met' : 'NOT met'} (${ratio.toFixed(2)}x).`);
writeFileSync(path.join(here, 'results.md'), `${lines.join('\n')}\n`);
