// npm run bench: the downtime of stop mode per stack and instant by instant, stack-backup (both
// drivers, before and after) beside a shell script that polls every 5 s, in the real world of the
// test suite, with the stand-in's 2 s job and a job of a minute, each with the stand-in's
// duplicati-server-util calls instant and taking BENCH_START_DELAY (0.3 s: a .NET start and a
// sign-in) to start; then snapshot mode beside stop mode, and `stack-backup list` over 200 stack
// files against bare node startup. Prints Markdown tables (also bench/results.md).
//
// Every instant is measured from outside where it can be: the stop and start requests from the
// tool's own log (or the script's clock), the unit going inactive and active from systemd's
// timestamps, the last container's exit from Podman's `died` events, the job queued, picked up
// and ended from the stand-in's clock; Duplicati confirmed idle, the run requested and the job's
// end seen only the tool itself knows (its `timeline` log line, "after" only).
//
// BENCH_BEFORE_REF (default main; none skips) is built aside into $WORLD_DIR/app-before.
// BENCH_STACKS (comma-separated) the stacks of the short job, BENCH_RUNS the runs per cell,
// BENCH_JOB_SECONDS the short job; BENCH_LONG_JOB_SECONDS the long one (0 skips it) and
// BENCH_LONG_STACKS its stacks; BENCH_START_DELAY the modelled start of each call (0 skips those
// rows); BENCH_SNAPSHOT the stacks for snapshot mode against stop mode (none: skip),
// BENCH_SNAPSHOT_SIZES their sizes in MB. BENCH_QUICK=1, for development: 2 runs, one stack,
// a 15 s long job, no snapshot section, no "before".
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { asUser, cell, checkout, here, median, quick, records, report, script, spread, useDriver, world, worldDir, writeStackFile } from './world.mjs';

const runs = Number(process.env.BENCH_RUNS ?? (quick ? 2 : 5));
const jobSeconds = Number(process.env.BENCH_JOB_SECONDS ?? 2);
const longJobSeconds = Number(process.env.BENCH_LONG_JOB_SECONDS ?? (quick ? 15 : 60));
const stacks = (process.env.BENCH_STACKS ?? (quick ? 'composeapp' : 'composeapp,ondemand,plainapp')).split(',').filter(Boolean);
const longStacks = (process.env.BENCH_LONG_STACKS ?? 'composeapp').split(',').filter(Boolean);
const startDelay = Number(process.env.BENCH_START_DELAY ?? 0.3);
const beforeRef = process.env.BENCH_BEFORE_REF ?? (quick ? 'none' : 'main');

/** When the stand-in queued task `task` (its ENQUEUE event). */
function enqueued(task) {
  for (const line of readFileSync(world.STANDIN_EVENTS, 'utf8').split('\n')) {
    const [at, event, id] = line.split(' ');
    if (event === 'ENQUEUE' && Number(id) === task) return Number(at);
  }
  return undefined;
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

/** systemd's own instants of the unit's last stop and start, to the microsecond. */
function unitInstants(stack) {
  const result = asUser('systemctl', '--user', 'show', '--timestamp=us+utc', '-p', 'InactiveEnterTimestamp', '-p', 'ActiveEnterTimestamp', `${stack}-stack.service`);
  const at = (key) => {
    const match = new RegExp(`^${key}=\\S+ (\\S+ \\S+) UTC$`, 'm').exec(result.stdout);
    return match ? Date.parse(`${match[1].replace(' ', 'T')}Z`) : undefined;
  };
  return { inactive: at('InactiveEnterTimestamp'), active: at('ActiveEnterTimestamp') };
}

function freshWorld(seconds, delay) {
  script('reset.sh', '--quiet');
  script('standin.sh', 'set', 'duration', String(seconds));
  script('standin.sh', 'set', 'start_delay', delay > 0 ? String(delay) : '-');
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

/** The instants of one run, all epoch ms; those no one could see are undefined. */
function instantsOf(stack, at) {
  const job = records().find((record) => record.name === stack && record.start >= at.stopRequested);
  if (!job) throw new Error(`no job of ${stack} in the stand-in's records`);
  const unit = unitInstants(stack);
  return {
    ...at,
    inactive: unit.inactive,
    lastExited: lastDied(stack, at.stopRequested, unit.active ?? Date.now()),
    queued: enqueued(job.task),
    pickedUp: job.start,
    ended: job.end,
    active: unit.active,
    verdict: job.verdict,
  };
}

function measureStackBackup(stack, cli = world.WORLD_CLI) {
  const run = asUser(process.execPath, cli, '--root', world.WORLD_ROOT, stack);
  if (run.status !== 0) throw new Error(`stack-backup ${stack} exited ${run.status}: ${run.stderr}`);
  const logFile = readdirSync(path.join(world.WORLD_ROOT, 'logs')).filter((name) => name.startsWith(`backup-${stack}-`)).sort().at(-1);
  const lines = readFileSync(path.join(world.WORLD_ROOT, 'logs', logFile), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  const ofThisRun = lines.filter((line) => line.run === lines.at(-1).run);
  const end = ofThisRun.find((line) => line.msg === 'stack run end');
  const time = (line) => Date.parse(line.time);
  const stopDone = ofThisRun.find((line) => line.step === 'stop unit' && line.event === 'end');
  const timeline = ofThisRun.find((line) => typeof line.msg === 'string' && line.msg.startsWith('timeline: '))?.timeline ?? {};
  const own = (label) => (timeline[label] ? Date.parse(timeline[label]) : undefined);
  return instantsOf(stack, {
    // Logged as the stop returned: the request was unit_stop_ms before (the timeline has it, "after").
    stopRequested: own('stop requested') ?? time(stopDone) - end.unit_stop_ms,
    idleConfirmed: own('Duplicati idle confirmed'),
    runRequested: own('run requested'),
    endSeen: own('end seen'),
    startRequested: own('start requested') ?? time(ofThisRun.find((line) => line.step === 'start unit' && line.event === 'start')),
  });
}

function measureBaseline(stack) {
  const run = asUser('sh', path.join(checkout, 'bench', 'baseline.sh'), stack, stack);
  if (run.status !== 0) throw new Error(`baseline ${stack} exited ${run.status}: ${run.stderr}`);
  const at = Object.fromEntries(run.stdout.trim().split('\n').map((line) => line.split(' ')).map(([event, ms]) => [event, Number(ms)]));
  return instantsOf(stack, { stopRequested: at.stop_begin, runRequested: at.run_begin, endSeen: at.job_done, startRequested: at.job_done });
}

/** The gaps of one run, in ms: they add up to its downtime. */
function gapsOf(run) {
  const down = Math.max(run.inactive, run.lastExited ?? run.inactive);
  const ours = run.queued - down + (run.startRequested - run.ended);
  return {
    downtime: run.active - run.stopRequested,
    stop: run.inactive - run.stopRequested,
    containers: down - run.inactive,
    idle: run.idleConfirmed === undefined ? undefined : run.idleConfirmed - down,
    toRun: run.runRequested === undefined ? undefined : run.runRequested - down,
    runToQueued: run.runRequested === undefined ? undefined : run.queued - run.runRequested,
    toQueued: run.queued - down,
    pickup: run.pickedUp - run.queued,
    job: run.ended - run.pickedUp,
    endSeen: run.endSeen === undefined ? undefined : run.endSeen - run.ended,
    seenToStart: run.endSeen === undefined ? undefined : run.startRequested - run.endSeen,
    toStart: run.startRequested - run.ended,
    start: run.active - run.startRequested,
    ours,
    // What the earlier benchmark called overhead: the downtime less the stop, the containers' exit, the job and the start.
    overhead: ours + (run.pickedUp - run.queued),
  };
}

const mid = (values) => {
  const known = values.filter((value) => value !== undefined && !Number.isNaN(value));
  return known.length === 0 ? '-' : median(known).toFixed(0);
};

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

const { lines, say } = report();

/** The tools compared, in the order of the tables. */
function toolsOf(beforeCli) {
  const delays = startDelay > 0 ? [0, startDelay] : [0];
  const tools = [];
  for (const delay of delays) {
    const suffix = delay > 0 ? `, calls start in ${delay} s` : '';
    for (const driver of ['exec', 'api']) {
      // The api driver calls no duplicati-server-util: the delay changes nothing for it.
      if (driver === 'api' && delay > 0) continue;
      const label = driver === 'exec' ? `exec driver (default)${suffix}` : 'api driver';
      if (beforeCli) tools.push({ name: `before: ${label}`, driver, delay, measure: (stack) => measureStackBackup(stack, beforeCli) });
      tools.push({ name: `${beforeCli ? 'after: ' : ''}${label}`, driver, delay, after: true, measure: (stack) => measureStackBackup(stack) });
    }
    tools.push({ name: `5 s polling script${suffix}`, driver: 'exec', delay, measure: measureBaseline });
  }
  return tools;
}

const beforeCli = stacks.length > 0 ? buildBefore() : undefined;
const beforeCommit = beforeCli ? execFileSync('git', ['-C', checkout, 'rev-parse', '--short', beforeRef], { encoding: 'utf8' }).trim() : undefined;
const afterCommit = execFileSync('git', ['-C', checkout, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const aims = [];
const targets = [];

function stopModeTables(seconds, benchStacks) {
  const tools = toolsOf(beforeCli);
  const results = [];
  for (const stack of benchStacks) {
    for (const tool of tools) {
      useDriver(tool.driver);
      const samples = [];
      for (let index = 0; index < runs; index++) {
        freshWorld(seconds, tool.delay);
        samples.push(tool.measure(stack));
      }
      results.push({ tool, stack, samples, gaps: samples.map(gapsOf) });
      process.stderr.write(`bench: ${seconds} s job, ${stack}, ${tool.name}: done\n`);
    }
  }
  useDriver('exec');
  script('reset.sh', '--quiet');
  say('');
  say(
    `Downtime per stack with a stand-in job of ${seconds} s, in ms: median ± half the spread over ${runs} runs. "Ours" = last container exited (or unit inactive, the later) → job queued, plus job ended → start requested: the two gaps that are stack-backup's. "Overhead" = downtime − (unit stop + containers' exit after it + job + unit start), as the benchmark named it before (ours plus Duplicati's pickup).${beforeCli ? ` "before": ${beforeRef} (${beforeCommit}); "after": this checkout (${afterCommit}).` : ''}`,
  );
  say('');
  say('| tool | stack | downtime | unit stop | containers exit | job | unit start | overhead | ours | CLEAN |');
  say('|---|---|---|---|---|---|---|---|---|---|');
  for (const { tool, stack, samples, gaps } of results) {
    const pick = (key) => gaps.map((gap) => gap[key]);
    say(`| ${tool.name} | ${stack} | ${cell(pick('downtime'))} | ${cell(pick('stop'))} | ${cell(pick('containers'))} | ${cell(pick('job'))} | ${cell(pick('start'))} | ${cell(pick('overhead'))} | **${cell(pick('ours'))}** | ${samples.filter((sample) => sample.verdict === 'CLEAN').length}/${samples.length} |`);
  }
  say('');
  say(`Timeline with a stand-in job of ${seconds} s: the median of each gap in ms, over ${runs} runs per stack; the gaps add up to the downtime ("stack down" is the later of unit inactive and last container exited; "idle confirmed" is relative to it: below 0, Duplicati was confirmed idle while the stack still stopped). Duplicati's own columns: queued → picked up (the stand-in's worker looks at its queue every 50 ms), the job. The stand-in is slower than Duplicati in one more place, counted in "end seen" of the api driver: its REST API looks for a change every 50 ms, where Duplicati's long-poll answers at once. "-": only the tool itself knows that instant.`);
  say('');
  say('| tool | stack | stop requested → unit inactive | → stack down | (idle confirmed) | stack down → run requested | → job queued | → picked up | → job ended | → end seen | → start requested | → unit active | ours | downtime |');
  say('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { tool, stack, gaps } of results) {
    const pick = (key) => gaps.map((gap) => gap[key]);
    const known = tool.after || tool.name.includes('script');
    say(
      `| ${tool.name} | ${stack} | ${mid(pick('stop'))} | ${mid(pick('containers'))} | ${mid(pick('idle'))} | ${known ? mid(pick('toRun')) : '-'} | ${known ? mid(pick('runToQueued')) : `${mid(pick('toQueued'))} (from stack down)`} | ${mid(pick('pickup'))} | ${mid(pick('job'))} | ${known ? mid(pick('endSeen')) : '-'} | ${known ? mid(pick('seenToStart')) : `${mid(pick('toStart'))} (from job ended)`} | ${mid(pick('start'))} | **${mid(pick('ours'))}** | ${mid(pick('downtime'))} |`,
    );
  }
  // The aims of issue 20, on this checkout's rows; and the project's target for the default settings.
  for (const { tool, stack, gaps, samples } of results) {
    if (!tool.after) continue;
    if (tool.driver === 'exec' && tool.delay === 0) {
      const overhead = median(gaps.map((gap) => gap.overhead));
      targets.push({ text: `${stack}, ${seconds} s job: overhead ${overhead.toFixed(0)} ms`, met: overhead < 300 });
    }
    const ours = median(gaps.map((gap) => gap.ours));
    const limit = tool.driver === 'api' ? 100 : 400 + 2 * tool.delay * 1000;
    aims.push({ text: `${tool.name}, ${stack}, ${seconds} s job: ours ${ours.toFixed(0)} ms (aim ${limit} ms)`, met: ours <= limit });
    aims.push({ text: `${tool.name}, ${stack}, ${seconds} s job: ${samples.filter((sample) => sample.verdict === 'CLEAN').length}/${samples.length} runs CLEAN`, met: samples.every((sample) => sample.verdict === 'CLEAN') });
  }
}

if (stacks.length > 0) {
  say(`Stop mode: ${os.cpus().length} cores, load average before the runs ${os.loadavg().map((value) => value.toFixed(2)).join(' ')}.`);
  stopModeTables(jobSeconds, stacks);
  if (longJobSeconds > 0 && longStacks.length > 0) stopModeTables(longJobSeconds, longStacks);
  say('');
  say(`Load average after the stop-mode runs: ${os.loadavg().map((value) => value.toFixed(2)).join(' ')}.`);
  say('');
  say('Target: median overhead under 300 ms per stack with default settings (exec driver, the stand-in\'s calls instant):');
  for (const target of targets) say(`- ${target.met ? 'met' : 'NOT met'}: ${target.text}`);
  say('');
  say('Aims (issue 20): exec driver, ours at most 400 ms with the calls instant and 400 ms plus two start delays (one `run`, one status call that sees the end) with them; api driver at most 100 ms; every run CLEAN.');
  for (const aim of aims) say(`- ${aim.met ? 'met' : 'NOT met'}: ${aim.text}`);
}

// Snapshot mode beside stop mode, on one stack at two data sizes with the same number of files:
// the stand-in's job reads all of it. Downtime in snapshot mode must not grow with the bytes and
// stay within 0.3 s of unit stop + container wait + unit start (BENCH_SNAPSHOT=none skips it).
const snapshotStacks = (process.env.BENCH_SNAPSHOT ?? (quick ? 'none' : 'snapbtrfs,snapxfs')).split(',').filter((name) => name && name !== 'none');
const snapshotSizes = (process.env.BENCH_SNAPSHOT_SIZES ?? '50,1024').split(',').map(Number);
const snapshotFiles = Number(process.env.BENCH_SNAPSHOT_FILES ?? 200);
const snapshotRuns = Number(process.env.BENCH_SNAPSHOT_RUNS ?? 3);
const snapshotPaths = {
  snapbtrfs: { driver: 'btrfs', source: path.join(world.BTRFS_DIR ?? '', 'snapbtrfs'), target: path.join(world.BTRFS_DIR ?? '', 'snapshots', 'snapbtrfs') },
  snapxfs: { driver: 'reflink', source: path.join(world.XFS_DIR ?? '', 'snapxfs'), target: path.join(world.XFS_DIR ?? '', 'snapshots', 'snapxfs') },
};

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
