// npm run bench, second part: a restore's downtime and total, and the restore test's own time and
// what it adds to the downtime, at the bench's two data sizes, in the real world of the test suite
// (the stand-in's job reads every byte; its restore writes every byte back). Appends its tables to
// bench/results.md (bench.mjs writes the first part).
//
// BENCH_RESTORE_STACKS (comma-separated; none skips) the stacks restored, BENCH_RESTORE_DRIVERS
// the drivers, BENCH_RESTORE_RUNS the runs per cell; BENCH_RESTORE_TEST_STACKS (none skips) the
// stacks whose backups run with and without a restore test, BENCH_RESTORE_TEST_RUNS its runs;
// BENCH_SNAPSHOT_SIZES the sizes in MB and BENCH_SNAPSHOT_FILES the files (as bench.mjs);
// BENCH_SIZES_SNAPBTRFS the sizes on the world's btrfs (default 50): it is 4 GiB, and a copy a
// restore swapped away stays referenced while the stand-in's /live volume (the stop-mode job of
// this bench) still shows it, so btrfs cannot free it when it is pruned, until the stand-in
// restarts (test/world/reset.sh does): a 1 GB restore beside 1 GB of data and the copies of the
// runs before runs out of space there (the restore fails and changes nothing, as it should, but
// measures nothing).
import { appendFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cell, here, lastLogLine, lastRun, median, quick, records, report, script, stackBackup, useDriver, world, writeStackFile } from './world.mjs';

const list = (name, otherwise) => (process.env[name] ?? otherwise).split(',').filter((item) => item && item !== 'none');
const restoreStacks = list('BENCH_RESTORE_STACKS', quick ? 'snapxfs' : 'snapxfs,snapbtrfs');
const drivers = list('BENCH_RESTORE_DRIVERS', quick ? 'exec' : 'exec,api');
const restoreRuns = Number(process.env.BENCH_RESTORE_RUNS ?? (quick ? 1 : 3));
const testStacks = list('BENCH_RESTORE_TEST_STACKS', 'snapxfs');
const testRuns = Number(process.env.BENCH_RESTORE_TEST_RUNS ?? (quick ? 1 : 3));
const sizes = list('BENCH_SNAPSHOT_SIZES', quick ? '50' : '50,1024').map(Number);
const files = Number(process.env.BENCH_SNAPSHOT_FILES ?? 200);
const sizesOf = (stack) => (stack === 'snapbtrfs' ? list('BENCH_SIZES_SNAPBTRFS', '50').map(Number) : sizes);

const live = { snapbtrfs: path.join(world.BTRFS_DIR, 'snapbtrfs'), snapxfs: path.join(world.XFS_DIR, 'snapxfs') };
const snapshotTarget = { snapbtrfs: path.join(world.BTRFS_DIR, 'snapshots', 'snapbtrfs'), snapxfs: path.join(world.XFS_DIR, 'snapshots', 'snapxfs') };
const driverOf = { snapbtrfs: 'btrfs', snapxfs: 'reflink' };
// The stand-in's second job of each snapshot stack backs up its live data (mounted at /live/STACK): stop mode.
const liveJob = { snapbtrfs: { id: '40', name: 'snapbtrfs-live' }, snapxfs: { id: '41', name: 'snapxfs-live' } };

/** The stack's file: snapshot mode (its snapshot job) or stop mode (its live job), with or without a restore test. */
function stackFile(stack, mode, test) {
  const jobs = mode === 'snapshot' ? `duplicati_jobs: [${stack}]\nsnapshot:\n  driver: ${driverOf[stack]}\n  paths:\n    - source: ${live[stack]}\n      target: ${snapshotTarget[stack]}\n` : `duplicati_jobs: [${liveJob[stack].name}]\n`;
  return `${jobs}${test ? `restore_test:\n  sample: ${test}\n` : 'restore_test: false\n'}`;
}

/** The world at baseline with the stack's data filled to this size; the stand-in's job reads it all in at least 1 s. */
function fill(stack, megabytes) {
  script('reset.sh', '--quiet');
  script('fill-data.sh', stack, String(megabytes), String(files));
  script('standin.sh', 'set', 'duration', '1');
  script('standin.sh', 'add-job', liveJob[stack].id, liveJob[stack].name, `/live/${stack}`);
}

const { lines, say } = report();
const verdicts = (samples) => `${samples.filter((sample) => sample.verdict === 'CLEAN').length}/${samples.length}`;

if (restoreStacks.length > 0) {
  say('');
  say(`Restore (\`stack-backup restore STACK --yes\`, the newest version, snapshot-mode stacks, ${files} files): ms, median ± half the spread over ${restoreRuns} runs. The stack is down from its stop to its start: Duplicati restores every byte into the staging folder meanwhile (the issue's order), so the downtime grows with the data; "staging" is that restore, "swap" the renames (and the staging folder's owner and mode), "total" the command's own time from its start to its summary. The old data is pruned (\`restore --prune\`) between runs, untimed.`);
  say('');
  say('| stack | data | driver | downtime | staging | swap | total |');
  say('|---|---|---|---|---|---|---|');
  for (const stack of restoreStacks) {
    for (const megabytes of sizesOf(stack)) {
      fill(stack, megabytes);
      for (const driver of drivers) {
        useDriver(driver);
        writeStackFile(stack, stackFile(stack, 'snapshot', false));
        stackBackup(stack);
        const samples = [];
        for (let index = 0; index < restoreRuns; index++) {
          stackBackup('restore', stack, '--yes');
          const end = lastLogLine('restore', stack, /^restore end$/);
          const staging = lastLogLine('restore', stack, 'restore into staging');
          const swap = lastLogLine('restore', stack, 'swap into place');
          samples.push({ downtime: end.downtime_ms, total: end.duration_ms, staging: staging.duration_ms, swap: swap.duration_ms });
          stackBackup('restore', '--prune', stack, '--yes');
        }
        const pick = (key) => samples.map((sample) => sample[key]);
        say(`| ${stack} | ${megabytes} MB | ${driver} | ${cell(pick('downtime'))} | ${cell(pick('staging'))} | ${cell(pick('swap'))} | ${cell(pick('total'))} |`);
      }
    }
  }
  useDriver('exec');
}

/**
 * The restore test's part of the last backup's downtime, exactly: the steps of the test that ran
 * between the stop's request and the start's end, and their time (stop mode: starting the reading,
 * then waiting for it to end, which is more than 0 only when the reading outlasts the job).
 */
function testInDowntime(stack) {
  const lines = lastRun('backup', stack);
  const from = lines.findIndex((line) => line.step === 'stop unit' && line.event === 'start');
  const to = lines.findLastIndex((line) => line.step === 'start unit' && line.event === 'end');
  const inside = lines.slice(from, to + 1).filter((line) => line.event === 'end' && /^restore test/.test(line.step ?? ''));
  return { steps: inside.length, ms: inside.reduce((sum, line) => sum + (line.duration_ms ?? 0), 0) };
}

if (testStacks.length > 0) {
  say('');
  say(`Restore test (\`restore_test: {sample: N}\`): a backup's downtime without a test and with one of 20 files and of all ${files} files; "test steps in downtime" the time of the test's steps between the stop and the start, from the run's log (in stop mode the sample is read while the job runs: this is the wait for the reading after the job); "test" its own time (reading the sample, restoring it into a scratch folder, comparing); ms, median ± half the spread over ${testRuns} runs, the exec driver. In snapshot mode the sample is read from the snapshots after the start.`);
  say('');
  say('| stack | data | mode | sample | downtime | test steps in downtime | test | sample read | job | CLEAN |');
  say('|---|---|---|---|---|---|---|---|---|---|');
  const inDowntime = { stop: [], snapshot: [] };
  const difference = { stop: [], snapshot: [] };
  let readOutlasted = 0;
  for (const stack of testStacks) {
    for (const megabytes of sizesOf(stack)) {
      fill(stack, megabytes);
      for (const mode of ['stop', 'snapshot']) {
        let without;
        for (const sample of [undefined, 20, 'all']) {
          writeStackFile(stack, stackFile(stack, mode, sample));
          const samples = [];
          for (let index = 0; index < testRuns; index++) {
            const before = Date.now();
            stackBackup(stack);
            const end = lastLogLine('backup', stack, /^stack run end$/);
            const job = records().find((record) => record.start >= Math.floor(before / 1000) - 1 && (record.name === stack || record.name === liveJob[stack].name));
            if (sample !== undefined && !end.restore_test?.passed) throw new Error(`${stack} (${mode} mode, sample ${sample}): the restore test did not pass: ${JSON.stringify(end.restore_test)}`);
            const inside = testInDowntime(stack);
            samples.push({ downtime: end.downtime_ms, inside: inside.ms, steps: inside.steps, test: end.restore_test?.ms, read: end.restore_test?.readMs, job: end.backup_ms, verdict: job?.verdict ?? 'none' });
          }
          const pick = (key) => samples.map((item) => item[key]);
          if (sample === undefined) without = median(pick('downtime'));
          else {
            difference[mode].push(median(pick('downtime')) - without);
            if (mode === 'snapshot') inDowntime.snapshot.push(...pick('steps'));
            else if (median(pick('read')) < median(pick('job'))) inDowntime.stop.push(...pick('inside'));
            else readOutlasted++;
          }
          const steps = sample === undefined ? '-' : mode === 'snapshot' ? `${Math.max(...pick('steps'))} steps` : cell(pick('inside'));
          say(`| ${stack} | ${megabytes} MB | ${mode} | ${sample ?? 'off'} | ${cell(pick('downtime'))} | ${steps} | ${cell(pick('test'))} | ${cell(pick('read'))} | ${cell(pick('job'))} | ${verdicts(samples)} |`);
        }
      }
    }
  }
  script('reset.sh', '--quiet');
  say('');
  const largest = (values) => Math.max(0, ...values.map(Math.abs));
  if (difference.snapshot.length) {
    say(`Target: snapshot mode, the downtime with a test is the downtime without: ${largest(inDowntime.snapshot) === 0 ? 'met' : 'NOT met'} (no step of the test between the stop and the start; the medians differ by up to ${largest(difference.snapshot).toFixed(0)} ms, the systemd stop and start's own spread).`);
  }
  if (difference.stop.length) {
    say(`Target: stop mode, the test adds at most 100 ms to the downtime while reading the sample fits in the job: ${largest(inDowntime.stop) <= 100 ? 'met' : 'NOT met'} (its steps in the downtime took up to ${largest(inDowntime.stop).toFixed(0)} ms${readOutlasted ? `; in ${readOutlasted} cell(s) the reading outlasted the job and the downtime waited for it` : ''}; the medians differ by up to ${largest(difference.stop).toFixed(0)} ms).`);
  }
}

// The snapshot stacks' files are the bench's own: none is left in the world's root.
for (const stack of new Set([...restoreStacks, ...testStacks])) rmSync(path.join(world.WORLD_ROOT, 'stacks', `${stack}.yaml`), { force: true });
appendFileSync(path.join(here, 'results.md'), `${lines.join('\n')}\n`);
