/**
 * The restore test after a backup: Duplicati never restores a file to check a backup, and never
 * compares one with its source. While stack-backup backs up, the source is frozen (the stack is
 * stopped, or its snapshots exist), so a sample of it restored from the version just made can be
 * compared exactly. The sample is picked and read from the frozen source (in stop mode while the
 * job runs, so the downtime does not grow unless reading outlasts the job), restored into a new
 * scratch folder beside the data (the Duplicati container writes it through the same volume as a
 * restore's staging folder), compared, and the scratch folder removed: always, its removal
 * journaled before it is made.
 */
import type { BackupVersion } from '../adapters/backup-versions.js';
import { findJob } from '../adapters/duplicati.js';
import { CommandError, errorMessage, throwIfAborted } from '../errors.js';
import type { RemoveMadeUndo } from '../journal/journal.js';
import { dataPathsOf, writableInContainer, type JobSources } from '../restore/data-paths.js';
import { undoExecution } from '../steps/undo-actions.js';
import { compare, describeComparison, landingOf, pickSample, sampleCount, type Comparison } from './compare.js';
import type { FileFacts } from '../adapters/source-files.js';
import { backedUpBy, type FilterTest } from './filters.js';
import type { BackupRun, RestoreTestResult, RestoreTestState, TestedPath } from './state.js';

export const readTimeoutMs = 6 * 3600_000;

/**
 * Before anything is touched: whether a test is due (interval), and where each data path's
 * frozen source is read. A path that cannot be told makes the test fail later, never the backup.
 */
export async function prepareRestoreTest(run: BackupRun): Promise<void> {
  const settings = run.stack.restoreTest;
  if (!settings) return;
  const last = run.lastPassingTestAt;
  const now = run.adapters.clock.now();
  if (settings.intervalMs > 0 && last !== undefined && now - last < settings.intervalMs) {
    const ago = Math.round((now - last) / 1000);
    run.restoreTest = { paths: [], result: skipped(`not due: the last passing test was ${ago} s ago (interval ${Math.round(settings.intervalMs / 1000)} s)`) };
    run.log.info(`restore test not due: last passed ${ago} s ago`, { interval_s: settings.intervalMs / 1000 });
    return;
  }
  const state: RestoreTestState = { paths: [] };
  run.restoreTest = state;
  try {
    const { duplicati, engine } = run.adapters;
    if (!duplicati.jobSources || !duplicati.restore || !duplicati.versions || !engine.containerMounts) throw new Error(`the ${run.global.duplicati.driver} driver cannot restore`);
    const known = await duplicati.listJobs(run.signal);
    const jobs: JobSources[] = [];
    const filters = new Map<string, FilterTest | undefined>();
    for (const job of run.stack.jobs) {
      const found = findJob(known, job);
      if (!found) throw new Error(`Duplicati has no job "${job}"`);
      jobs.push({ job, backupId: found.id, sources: await duplicati.jobSources(found.id, run.signal) });
      filters.set(found.id, duplicati.jobFilters ? backedUpBy(await duplicati.jobFilters(found.id, run.signal)) : undefined);
    }
    const mounts = await engine.containerMounts(run.global.duplicati.container, run.signal);
    const { paths, problems } = dataPathsOf({ stack: run.stack, jobs, mounts, run: run.runId, container: run.global.duplicati.container, purpose: 'restore test' });
    if (problems.length > 0) throw new Error(problems.join('; '));
    state.paths = paths.map((dataPath) => {
      // Snapshot mode: the frozen source is the snapshot the job reads, its target.
      const snapshot = run.stack.snapshot?.paths.find((entry) => entry.source === dataPath.live);
      return { job: dataPath.job, backupId: dataPath.backupId, source: dataPath.source, frozen: snapshot?.target ?? dataPath.live, live: dataPath.live, backedUp: filters.get(dataPath.backupId) };
    });
  } catch (error) {
    state.problem = `the restore test cannot be prepared: ${errorMessage(error)}`;
    run.log.warn(state.problem);
  }
}

function skipped(why: string): RestoreTestResult {
  return { passed: true, skipped: why, tested: 0, identical: 0, mismatches: 0, bytes: 0, ms: 0, lines: [`restore test: ${why}`] };
}

/** Picks the sample from the frozen source and reads it (facts and hashes), inside the user's namespace. */
async function readSample(run: BackupRun, state: RestoreTestState, signal: AbortSignal = run.signal): Promise<void> {
  const settings = run.stack.restoreTest!;
  const { sourceFiles } = run.adapters;
  const started = run.adapters.clock.now();
  const listed: Array<{ path: TestedPath; files: string[] }> = [];
  for (const tested of state.paths) {
    const all = await sourceFiles.list(tested.frozen, readTimeoutMs, signal);
    const backedUp = tested.backedUp;
    listed.push({ path: tested, files: backedUp ? all.filter((relative) => backedUp(`${tested.source}/${relative}`)) : all });
  }
  const total = listed.reduce((sum, entry) => sum + entry.files.length, 0);
  const keys = listed.flatMap((entry, index) => entry.files.map((file) => `${index}\u0000${file}`));
  const picked = new Set(pickSample(keys, sampleCount(settings.sample, total)));
  state.sample = [];
  for (const [index, entry] of listed.entries()) {
    const files = entry.files.filter((file) => picked.has(`${index}\u0000${file}`));
    const facts = files.length > 0 ? await sourceFiles.facts(entry.path.frozen, files, readTimeoutMs, signal) : new Map<string, FileFacts>();
    state.sample.push({ path: entry.path, files, facts, sourceFiles: entry.files.length });
  }
  run.log.info('restore test: sample read from the frozen source', {
    files: state.sample.reduce((sum, entry) => sum + entry.files.length, 0),
    of: total,
    duration_ms: run.adapters.clock.now() - started,
  });
  state.readMs = run.adapters.clock.now() - started;
}

/** Stop mode: reads the sample while the job runs (the stack is down, its data frozen). */
export function startReadingSample(run: BackupRun): void {
  const state = run.restoreTest;
  if (!state || state.result || state.problem) return;
  state.stopReading = new AbortController();
  state.reading = readSample(run, state, AbortSignal.any([run.signal, state.stopReading.signal]));
  // Awaited by finishReadingSample; until then a failure must not count as unhandled.
  state.reading.catch(() => {});
  run.log.info('restore test: reading the sample from the frozen source while the job runs');
}

/** The run failed before the reading was awaited: it ends now, before the stack starts again. */
export async function endReading(run: BackupRun): Promise<void> {
  const state = run.restoreTest;
  if (!state?.reading) return;
  state.stopReading?.abort(new Error('the backup failed'));
  await state.reading.catch(() => {});
  state.reading = undefined;
}

/** Stop mode, before the stack starts again: the reading must have ended (the data is frozen only until then). */
export async function finishReadingSample(run: BackupRun): Promise<void> {
  const state = run.restoreTest;
  if (!state?.reading) return;
  const step = run.log.step('restore test: finish reading the sample');
  try {
    await state.reading;
    state.reading = undefined;
    step.done();
  } catch (error) {
    state.reading = undefined;
    if (run.signal.aborted) throw error;
    state.problem = `the sample could not be read from the frozen source: ${errorMessage(error)}`;
    step.failed(error as Error);
  }
}

/** Snapshot mode: reads the sample from the snapshots, which still exist. */
export async function readSampleFromSnapshots(run: BackupRun): Promise<void> {
  const state = run.restoreTest;
  if (!state || state.result || state.problem) return;
  try {
    await readSample(run, state);
  } catch (error) {
    if (run.signal.aborted) throw error;
    state.problem = `the sample could not be read from the snapshots: ${errorMessage(error)}`;
  }
}

/** The version the job just made: the newest, made at or after the backup began. */
function versionJustMade(versions: readonly BackupVersion[], since: number): BackupVersion | undefined {
  const newest = [...versions].sort((a, b) => a.version - b.version)[0];
  // Duplicati's fileset times are whole seconds of the operation's start.
  return newest && Date.parse(newest.time) >= Math.floor(since / 1000) * 1000 - 1000 ? newest : undefined;
}

/**
 * With the sample read: each job restores exactly the sampled files of the version it just made
 * into a scratch folder, which is then compared file by file with the frozen source, and removed.
 * The verdict is kept on the run (run.restoreTest.result); it never throws for what it finds, only
 * for a signal.
 */
export async function restoreAndCompare(run: BackupRun): Promise<void> {
  const state = run.restoreTest;
  if (!state || state.result) return;
  const started = run.adapters.clock.now();
  const step = run.log.step('restore test');
  const problems: string[] = [];
  let comparison: Comparison = { tested: 0, identical: 0, bytes: 0, mismatches: [], mismatchCount: 0 };
  let sourceFiles = 0;
  let versionFiles = 0;
  let countProblem: string | undefined;
  try {
    if (state.problem) throw new CommandError(state.problem);
    if (!state.sample) throw new CommandError('no sample was read');
    const { duplicati, madePaths, engine, sourceFiles: files } = run.adapters;
    const mounts = (await engine.containerMounts?.(run.global.duplicati.container, run.signal)) ?? [];
    const sources: FileFacts[] = [];
    const restored = new Map<string, FileFacts>();
    const versions = new Map<string, BackupVersion>();
    for (const [index, entry] of state.sample.entries()) {
      throwIfAborted(run.signal);
      const { path: tested } = entry;
      let version = versions.get(tested.backupId);
      if (!version) {
        version = versionJustMade(await duplicati.versions!(tested.backupId, run.signal), run.timings.backupStartedAt ?? started - 3_600_000);
        if (!version) throw new CommandError(`job ${tested.job} made no new version to test`);
        versions.set(tested.backupId, version);
      }
      // What the version holds below the source, beside what the frozen source held (both without what the job's filters leave out).
      const entries = await duplicati.versionEntries!(tested.backupId, version, tested.source, run.signal);
      versionFiles += entries.filter((item) => item.kind !== 'folder').length;
      sourceFiles += entry.sourceFiles;
      const keyed = (relative: string) => `${index}/${relative}`;
      for (const file of entry.files) {
        const facts = entry.facts.get(file);
        if (facts) sources.push({ ...facts, path: keyed(file) });
      }
      if (entry.files.length === 0) continue;
      const scratch = `${tested.live}.stack-backup-test-${run.runId}`;
      const scratchInContainer = writableInContainer(scratch, mounts);
      if (!scratchInContainer) throw new CommandError(`the Duplicati container cannot write beside ${tested.live}`);
      const record: RemoveMadeUndo = { kind: 'remove-made', what: 'restore test scratch folder', path: scratch, method: 'files', jobs: [tested.job] };
      const removal = run.undo.push(run.stack.name, record);
      try {
        removal.update({ ...record, made: await madePaths.makeFolder(scratch, 'folder', run.signal) });
        const wanted = entry.files.map((file) => `${tested.source}/${file}`);
        const pause = duplicati.pause && run.global.duplicati.driver === 'exec';
        if (pause) {
          run.undo.push(run.stack.name, { kind: 'resume-duplicati', container: run.global.duplicati.container, serverUtil: run.global.duplicati.serverUtil });
          await duplicati.pause!(run.signal);
        }
        let outcome;
        try {
          // By its exact time (never Duplicati's silent newest), only these files, owners and modes with them.
          outcome = await duplicati.restore!({ job: tested.job, backupId: tested.backupId, version, filters: wanted, restorePath: scratchInContainer, tag: `${run.runId}-test` }, run.signal);
        } finally {
          if (pause) await settleResume(run);
        }
        // A sample from several folders: Duplicati makes the folders it was not asked for, with a warning (CreateMissingFolder), as expected.
        const benign = (message: string) => /CreateMissingFolder|^Creating missing folder/.test(message);
        if (outcome.result === 'Error' || outcome.result === 'Fatal' || (outcome.result === 'Warning' && !outcome.messages.every(benign))) {
          problems.push(`Duplicati's restore of the sample of job ${tested.job} ended ${outcome.result}${outcome.messages.length ? `: ${outcome.messages.filter((message) => !benign(message)).slice(0, 5).join('; ')}` : ''}`);
        }
        if (outcome.restoredFiles < wanted.length) problems.push(`Duplicati restored ${outcome.restoredFiles} of the ${wanted.length} files asked for`);
        // Duplicati strips the sample's common folder: each file lands relative to it.
        const landing = landingOf(wanted);
        const landed = entry.files.map((file) => landing.relative(`${tested.source}/${file}`));
        const read = await files.facts(scratch, landed, readTimeoutMs, run.signal);
        entry.files.forEach((file, position) => {
          const facts = read.get(landed[position]!);
          if (facts) restored.set(keyed(file), { ...facts, path: keyed(file) });
        });
      } finally {
        await settleScratch(run, scratch);
      }
    }
    comparison = compare(sources, restored);
    const tolerance = run.stack.restoreTest!.countTolerancePercent;
    const difference = sourceFiles === 0 ? (versionFiles === 0 ? 0 : 100) : (Math.abs(versionFiles - sourceFiles) / sourceFiles) * 100;
    if (difference > tolerance) {
      countProblem = `the version holds ${versionFiles} files and links, the frozen source ${sourceFiles} (${difference.toFixed(1)}% apart, count_tolerance ${tolerance}%)`;
    }
  } catch (error) {
    if (run.signal.aborted) {
      step.failed(error as Error);
      throw error;
    }
    problems.push(errorMessage(error));
  }
  // The test's own time: reading the sample, then restoring and comparing it (not the job the reading overlapped).
  const ms = (state.readMs ?? 0) + run.adapters.clock.now() - started;
  const shown = (name: string) => name.replace(/^\d+\//, '');
  const lines = [
    ...describeComparison({ ...comparison, mismatches: comparison.mismatches.map((mismatch) => ({ ...mismatch, path: shown(mismatch.path) })) }, ms),
    ...(countProblem ? [`  ${countProblem}`] : sourceFiles > 0 ? [`  the version holds ${versionFiles} files and links, the frozen source ${sourceFiles}`] : []),
    ...problems.map((problem) => `  ${problem}`),
  ];
  const passed = problems.length === 0 && countProblem === undefined && comparison.mismatchCount === 0 && comparison.tested > 0;
  if (comparison.tested === 0 && problems.length === 0) lines.push('  no file to test: the frozen source holds none the job backs up');
  state.result = {
    passed,
    tested: comparison.tested,
    identical: comparison.identical,
    mismatches: comparison.mismatchCount,
    bytes: comparison.bytes,
    ms,
    readMs: state.readMs,
    sourceFiles,
    versionFiles,
    lines,
  };
  if (passed) {
    step.done({ tested: comparison.tested, identical: comparison.identical, bytes: comparison.bytes, duration_ms: ms });
    run.log.info(lines[0]!, { restore_test: state.result });
  } else {
    step.failed(new CommandError(lines.join('; ')));
    run.log.error(lines.join('\n'), { restore_test: state.result });
  }
}

/** The scratch folder goes at once, whatever happened: its removal undo is run now. */
async function settleScratch(run: BackupRun, scratch: string): Promise<void> {
  const { execute, observer } = undoExecution(run);
  const failures = await run.undo.settle((record) => record.kind === 'remove-made' && record.path === scratch, execute, observer);
  for (const failure of failures) run.log.error(`the restore test's scratch folder ${scratch} was not removed: ${failure.error.message}`);
}

async function settleResume(run: BackupRun): Promise<void> {
  const { execute, observer } = undoExecution(run);
  const failures = await run.undo.settle((record) => record.kind === 'resume-duplicati', execute, observer);
  for (const failure of failures) run.log.error(`the Duplicati server was not resumed: ${failure.error.message}`);
}
