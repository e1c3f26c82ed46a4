/**
 * The restore's own steps: its preflight (the versions, the data paths, room for the copies),
 * the staging folders, Duplicati's restore into them and its verdict, the swap by rename, the
 * start on the restored data, and the way back to the old data. The stop, freeze, hooks and the
 * start itself are a backup's steps (src/steps/). Every change registers its undo first; a
 * rename is journaled before it is made, so a run that dies between two renames leaves each
 * path wholly old once `recover` has replayed it.
 */
import path from 'node:path';
import { lookTimeoutMs, removalTimeoutMs, type PathIdentity } from '../adapters/made-paths.js';
import { CommandError, errorMessage, throwIfAborted } from '../errors.js';
import { formatBytes } from '../format.js';
import type { RemoveMadeUndo, RenameBackUndo, UndoRecord } from '../journal/journal.js';
import { checkStep, preflight } from '../steps/preflight.js';
import { undoExecution } from '../steps/undo-actions.js';
import { renameTimeoutMs } from '../journal/undo-records.js';
import type { UndoFailure } from '../journal/undo.js';
import type { PlannedPath, RestoreRun } from './context.js';
import { dataPathsOf, type JobSources } from './data-paths.js';

/** Restores have no bound of their own: a large one takes hours. Duplicati's wait_timeout bounds them (as it bounds a job). */
export const restoreTimeoutMs = (run: RestoreRun) => run.global.duplicati.waitTimeoutMs;

/** A folder with everything below it, as Duplicati's filters say it (what its web UI sends for a folder). */
export function folderFilter(folder: string): string {
  return `[${escapeRegex(folder.replace(/\/+$/, ''))}/.*]`;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const probesPerPath = 3;
/** Room left on a filesystem beyond the restored data: Duplicati downloads its volumes beside it. */
const spareFraction = 0.05;

/**
 * Before anything is touched: the usual checks (Podman, the Duplicati container, the units),
 * then each chosen version still exists, each job's sources map to data paths the container can
 * stage beside, nothing is at the names the restore will use, and each filesystem has room.
 */
export async function restorePreflight(run: RestoreRun): Promise<void> {
  await preflight(run);
  const { duplicati, engine, madePaths } = run.adapters;
  const { container } = run.global.duplicati;
  const state = run.restore;
  await checkStep(run, 'check the versions and the data paths', { versions: state.choices.map((choice) => `${choice.job}: ${choice.version.version}`) }, async () => {
    if (!duplicati.versions || !duplicati.versionEntries || !duplicati.jobSources || !duplicati.restore) return `the ${run.global.duplicati.driver} driver cannot restore`;
    for (const choice of state.choices) {
      const now = await duplicati.versions(choice.backupId, run.signal);
      const same = now.find((candidate) => candidate.time === choice.version.time);
      if (!same) return `job ${choice.job} no longer has its version of ${choice.version.time}`;
      choice.version = same;
    }
    const jobs: JobSources[] = [];
    for (const choice of state.choices) jobs.push({ job: choice.job, backupId: choice.backupId, sources: await duplicati.jobSources(choice.backupId, run.signal) });
    if (!engine.containerMounts) return 'the Podman API cannot say which volumes the Duplicati container has';
    const mounts = await engine.containerMounts(container, run.signal);
    const subvolumes = new Set<string>();
    const looks = new Map<string, PathIdentity | undefined>();
    // Where a path is a btrfs subvolume its staging folder is one too: after the swap, the next snapshot still works.
    const candidates = dataPathsOf({ stack: run.stack, jobs, mounts, run: run.runId, container });
    for (const candidate of candidates.paths) {
      const look = await madePaths.look(candidate.live, run.signal);
      if (look.kind === 'link') return `${candidate.live} is a symbolic link (to ${look.to}): a restore swaps folders, never through a link; point the job at the real folder`;
      if (look.kind === 'other') return `${candidate.live} is not a folder`;
      looks.set(candidate.live, look.kind === 'folder' ? look.identity : undefined);
      if (look.kind === 'folder' && look.identity.subvolume !== undefined) subvolumes.add(candidate.live);
      for (const name of [candidate.staging, candidate.old]) {
        if ((await madePaths.look(name, run.signal)).kind !== 'absent') return `${name} exists: a restore makes it anew and never replaces anything`;
      }
    }
    const { paths, problems, warnings } = dataPathsOf({ stack: run.stack, jobs, mounts, run: run.runId, container, subvolumes });
    if (problems.length > 0) return problems.join('; ');
    for (const warning of warnings) run.log.warn(warning);
    if (paths.length === 0) return 'the chosen jobs hold no data path of this stack';
    const needed = new Map<string, number>();
    const planned: PlannedPath[] = [];
    for (const dataPath of paths) {
      const choice = state.choices.find((candidate) => candidate.backupId === dataPath.backupId)!;
      const entries = await duplicati.versionEntries(choice.backupId, choice.version, dataPath.source, run.signal);
      const written = entries.filter((entry) => entry.kind !== 'folder');
      if (written.length === 0) return `version ${choice.version.version} of job ${choice.job} (${choice.version.time}) holds no file below ${dataPath.source}: restoring it would leave ${dataPath.live} empty`;
      const expectedBytes = written.reduce((sum, entry) => sum + (entry.size ?? 0), 0);
      const folder = path.dirname(dataPath.live);
      needed.set(folder, (needed.get(folder) ?? 0) + expectedBytes);
      planned.push({
        ...dataPath,
        liveIdentity: looks.get(dataPath.live),
        expectedFiles: written.length,
        expectedBytes,
        probes: written.slice(0, probesPerPath).map((entry) => path.posix.relative(dataPath.source, entry.path)),
        version: choice,
      });
    }
    for (const [folder, bytes] of needed) {
      const free = await madePaths.freeBytes(folder);
      if (free < bytes * (1 + spareFraction)) {
        return `the filesystem of ${folder} has ${formatBytes(free)} free, and the restore needs ${formatBytes(bytes)} and a little more beside the data (the old data stays until the restored copy is complete)`;
      }
    }
    state.paths = planned;
    return undefined;
  });
}


/** One empty staging folder per data path, beside it; each one's removal registered before it is made. */
export async function makeStagingFolders(run: RestoreRun): Promise<void> {
  const { madePaths } = run.adapters;
  for (const planned of run.restore.paths) {
    const step = run.log.step('make staging folder', { path: planned.staging, kind: planned.kind });
    try {
      const record: RemoveMadeUndo = {
        kind: 'remove-made',
        what: 'restore staging folder',
        path: planned.staging,
        method: planned.kind === 'btrfs-subvolume' ? 'btrfs-subvolume' : 'files',
        jobs: [planned.job],
      };
      const removal = run.undo.push(run.stack.name, record);
      const identity = await madePaths.makeFolder(planned.staging, planned.kind, run.signal);
      removal.update({ ...record, made: identity });
      run.restore.staged.set(planned.live, { identity, removal });
      step.done();
    } catch (error) {
      step.failed(error as Error);
      throw error;
    }
  }
}

/** Exec driver: a restore reads the job's database outside the server, so no task of it may open it meanwhile. */
export async function pauseDuplicati(run: RestoreRun): Promise<void> {
  const { duplicati } = run.adapters;
  if (!duplicati.pause) return;
  const step = run.log.step('pause the Duplicati server');
  try {
    run.undo.push(run.stack.name, { kind: 'resume-duplicati', container: run.global.duplicati.container, serverUtil: run.global.duplicati.serverUtil });
    await duplicati.pause(run.signal);
    const status = await duplicati.status(run.signal);
    // A task that began between the idle check and the pause holds a job's database: wait for none.
    if (status.active) throw new CommandError(`Duplicati began task ${status.active.task} (backup ${status.active.backupId}) before it was paused; try again once it has ended`);
  } catch (error) {
    step.failed(error as Error);
    throw error;
  }
  step.done();
}

export async function resumeDuplicati(run: RestoreRun): Promise<void> {
  const failures = await settle(run, (record) => record.kind === 'resume-duplicati');
  if (failures.length > 0) throw new CommandError(`the Duplicati server was not resumed: ${failures.map((failure) => failure.error.message).join('; ')}`);
}

/**
 * Duplicati restores each data path's version into its staging folder, and its verdict is judged
 * by the outcome and by what is in the folder: an Error or Fatal result, a warning (owners that
 * could not be set, a symlink skipped), fewer files than the version holds, or files that did not
 * land where they belong fail the restore before the live data is touched.
 */
export async function restoreIntoStaging(run: RestoreRun): Promise<void> {
  const { duplicati } = run.adapters;
  const started = run.adapters.clock.now();
  for (const planned of run.restore.paths) {
    const { version } = planned;
    const step = run.log.step('restore into staging', {
      job: version.job,
      version: version.version.version,
      time: version.version.time,
      source: planned.source,
      staging: planned.staging,
    });
    try {
      throwIfAborted(run.signal);
      const outcome = await duplicati.restore!(
        { job: version.job, backupId: version.backupId, version: version.version, filters: [folderFilter(planned.source)], restorePath: planned.stagingInContainer, tag: run.runId },
        run.signal,
      );
      const said = outcome.messages.length > 0 ? `: ${outcome.messages.slice(0, 5).join('; ')}` : '';
      if (outcome.result === 'Error' || outcome.result === 'Fatal') throw new CommandError(`Duplicati's restore of job ${version.job} into ${planned.staging} ended ${outcome.result}${said}`);
      if (outcome.result === 'Warning') {
        throw new CommandError(`Duplicati's restore of job ${version.job} into ${planned.staging} ended with warnings, and a restored copy must be exact${said}`);
      }
      if (outcome.restoredFiles < planned.expectedFiles) {
        throw new CommandError(
          `Duplicati restored ${outcome.restoredFiles} of the ${planned.expectedFiles} files and links that version ${version.version.version} of job ${version.job} holds below ${planned.source}${outcome.restoredFiles === 0 ? ' (and called it a success)' : ''}`,
        );
      }
      await checkLanding(run, planned);
      run.restore.restored.push({ live: planned.live, job: version.job, files: outcome.restoredFiles, bytes: outcome.sizeBytes });
      step.done({ restored_files: outcome.restoredFiles, bytes: outcome.sizeBytes, result: outcome.result });
    } catch (error) {
      step.failed(error as Error);
      throw error;
    }
  }
  run.log.info('restore into staging done', { duration_ms: run.adapters.clock.now() - started });
}

/**
 * Counts what is in the staging folder (Duplicati's own count is not taken on trust) and checks
 * that the version's files are where they belong: directly in it, as the stable releases restore
 * a job with one source. Releases that keep a selected folder's name put a job with several
 * sources one level deeper: that folder's contents are moved up.
 */
async function checkLanding(run: RestoreRun, planned: PlannedPath): Promise<void> {
  const { madePaths } = run.adapters;
  let contents = await madePaths.contents(planned.staging, planned.probes, lookTimeoutMs, run.signal);
  const deeper = path.posix.basename(planned.source);
  if (!contents.present.every(Boolean) && contents.names.length === 1 && contents.names[0] === deeper) {
    run.log.info(`the restore landed in ${planned.staging}/${deeper}: moving its contents up`, { staging: planned.staging });
    await madePaths.lift(planned.staging, deeper, renameTimeoutMs, run.signal);
    contents = await madePaths.contents(planned.staging, planned.probes, lookTimeoutMs, run.signal);
  }
  const missing = planned.probes.filter((_, index) => !contents.present[index]);
  if (missing.length > 0) throw new CommandError(`the restored files are not where they belong in ${planned.staging}: ${missing.join(', ')} missing`);
  if (!(contents.files >= planned.expectedFiles)) {
    throw new CommandError(`${planned.staging} holds ${contents.files} files and links, and version ${planned.version.version.version} of job ${planned.version.job} holds ${planned.expectedFiles}`);
  }
}

/**
 * Each path: the live data to its old name, then the restored copy to the live name, each rename
 * journaled (as its way back) before it is made; the staging folder's removal is then taken off
 * the stack: what it named is the live data now.
 */
export async function swapIntoPlace(run: RestoreRun): Promise<void> {
  const { madePaths } = run.adapters;
  for (const planned of run.restore.paths) {
    const staged = run.restore.staged.get(planned.live);
    if (!staged) throw new Error(`${planned.live} has no staging folder`);
    const step = run.log.step('swap into place', { live: planned.live, old: planned.old });
    try {
      throwIfAborted(run.signal);
      if (planned.liveIdentity) {
        // The folder it replaces gives the restored copy its owner and mode: the stack finds its data folder as it was.
        await madePaths.copyAttributes(planned.live, planned.staging, run.signal);
        const now = await madePaths.look(planned.live, run.signal);
        if (now.kind !== 'folder' || now.identity.inode !== planned.liveIdentity.inode || now.identity.born !== planned.liveIdentity.born) {
          throw new CommandError(`${planned.live} changed since the preflight: nothing was swapped`);
        }
        await rename(run, { kind: 'rename-back', what: 'old data', from: planned.old, to: planned.live, made: now.identity }, planned.live, planned.old);
      }
      await rename(run, { kind: 'rename-back', what: 'restored copy', from: planned.live, to: planned.staging, made: staged.identity }, planned.staging, planned.live);
      run.restore.swapped.push(planned.live);
      step.done();
    } catch (error) {
      step.failed(error as Error);
      throw error;
    }
  }
  // Every path is swapped: a staging folder's removal would now name nothing of a failed restore.
  const { observer } = undoExecution(run);
  run.undo.commit((record) => record.kind === 'remove-made' && record.what === 'restore staging folder', observer);
  run.restore.stagingCommitted = true;
}

/** Journals the way back, then renames; a rename that must not be done fails the step. */
async function rename(run: RestoreRun, back: RenameBackUndo, from: string, to: string): Promise<void> {
  run.undo.push(run.stack.name, back);
  const renamed = await run.adapters.madePaths.rename(from, to, back.made, renameTimeoutMs, run.signal);
  if (renamed.outcome === 'kept') throw new CommandError(`cannot rename ${from} to ${to}: ${renamed.reason}`);
}

function settle(run: RestoreRun, which: (record: UndoRecord) => boolean): Promise<UndoFailure[]> {
  const { execute, observer } = undoExecution(run);
  return run.undo.settle(which, execute, observer);
}

const isStackUndo = (record: UndoRecord) => record.kind === 'restore-unit' || record.kind === 'unfreeze' || record.kind === 'hooks';

/** Starts the stack on whatever is in place now: pre_start hooks, the unit per restore_policy, unfreeze, post_start hooks. */
export async function startStack(run: RestoreRun): Promise<void> {
  const failures = await settle(run, isStackUndo);
  if (failures.length > 0) {
    (run.earlyUndoFailures ??= []).push(...failures);
    throw new StartError(`the stack did not start on the restored data: ${failures.map((failure) => `${failure.name}: ${failure.error.message}`).join('; ')}`);
  }
  run.restore.started = true;
}

/** The start on the restored data failed: a reason to put the old data back. */
export class StartError extends CommandError {
  override name = 'StartError';
}

/** The renames back, last first: each path wholly old again, its restored copy back at its staging name. */
export async function swapBack(run: RestoreRun): Promise<UndoFailure[]> {
  return settle(run, (record) => record.kind === 'rename-back');
}

/** After the restored stack passed its verify hooks: the swap is what is wanted; its ways back are crossed out. */
export function commitSwap(run: RestoreRun): void {
  const { observer } = undoExecution(run);
  run.undo.commit((record) => record.kind === 'rename-back', observer);
}

/** restore.keep_old false: the old data goes once the restored stack passed its verify hooks, only where it is still what was moved aside. */
export async function removeOldData(run: RestoreRun): Promise<string[]> {
  const kept: string[] = [];
  for (const planned of run.restore.paths) {
    if (!planned.liveIdentity || !run.restore.swapped.includes(planned.live)) continue;
    const step = run.log.step('remove old data', { path: planned.old });
    try {
      const removal = await run.adapters.madePaths.remove(planned.old, planned.liveIdentity, planned.kind === 'btrfs-subvolume' ? 'btrfs-subvolume' : 'files', removalTimeoutMs, run.signal);
      if (removal.outcome === 'kept') kept.push(`${planned.old} (${removal.reason})`);
      step.done({ outcome: removal.outcome });
    } catch (error) {
      step.failed(error as Error);
      kept.push(`${planned.old} (${errorMessage(error)})`);
    }
  }
  return kept;
}
