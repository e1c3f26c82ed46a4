/**
 * `restore STACK --to DIR`: the stack's data restored into DIR (absent or empty), one folder per
 * data path, the stack untouched: for picking single files. Owners and modes come back as they
 * were (subordinate UIDs: read them with `podman unshare`). Its steps are values, as a
 * restore's are: the run walks them, `--dry-run` prints them.
 */
import path from 'node:path';
import { lookTimeoutMs, makeFolderArgv } from '../adapters/made-paths.js';
import { CommandError, UsageError, errorMessage, throwIfAborted } from '../errors.js';
import { createStackLog } from '../report/logging.js';
import { shellLine } from '../shell-quote.js';
import { beginStackRun } from '../steps/context.js';
import { describeSteps, runSequence, type Step } from '../steps/sequence.js';
import type { PlannedPath, RestoreRun } from './context.js';
import { writableInContainer, type DataPath } from './data-paths.js';
import { withOpenRun } from '../open-run.js';
import { restoreOnLoss, type RestoreRequest } from './run.js';
import { duplicatiRestoreCall, each, pauseStep, restorePreflightStep, resumeStep, type RestorePlanInput } from './sequence.js';
import { folderFilter, resumeDuplicati } from './steps.js';

export interface RestoreToResult {
  ok: boolean;
  folder: string;
  paths: Array<{ job: string; source: string; path: string; files: number | undefined }>;
  error: string | undefined;
}

/** Where one data path lands in DIR, on the host and in the Duplicati container. */
interface Target {
  planned: PlannedPath;
  path: string;
  inContainer: string;
}

/** A restore into a folder: a restore's state, and the folder's own. */
export interface RestoreToRun extends RestoreRun {
  into: { folder: string; made: boolean; targets: Target[]; result: RestoreToResult };
}

export interface RestoreToPlanInput extends RestorePlanInput {
  folder: string;
}

/** Each data path's folder in DIR: its own name, the job's added where two share one. */
function targetNames(folder: string, paths: readonly DataPath[]): string[] {
  const names = new Set<string>();
  return paths.map((planned) => {
    let name = path.basename(planned.live);
    if (names.has(name)) name = `${name}-${planned.job}`;
    names.add(name);
    return path.join(folder, name);
  });
}

function checkFolderStep({ folder, global }: RestoreToPlanInput): Step<RestoreToRun> {
  return {
    name: 'check the folder',
    actions: [
      `${shellLine([folder])} must be absent or an empty folder (read inside podman unshare)`,
      `the Duplicati container ${global.duplicati.container} must write into it through a volume of it or of a folder above it (Podman API: GET /containers/${global.duplicati.container}/json)`,
    ],
    run: async (run) => {
      const { adapters, global: settings, signal } = run;
      const { folder: target } = run.into;
      const look = await adapters.madePaths.look(target, signal);
      if (look.kind === 'link' || look.kind === 'other') throw new UsageError(`--to ${target}: it is not a folder`);
      if (look.kind === 'folder') {
        const contents = await adapters.madePaths.contents(target, [], lookTimeoutMs, signal);
        if (contents.names.length > 0) throw new UsageError(`--to ${target}: it is not empty (${contents.names.slice(0, 3).join(', ')}${contents.names.length > 3 ? ', ...' : ''})`);
      }
      run.into.made = look.kind === 'folder';
      const mounts = (await adapters.engine.containerMounts?.(settings.duplicati.container, signal)) ?? [];
      const hostPaths = targetNames(target, run.restore.paths);
      run.into.targets = run.restore.paths.map((planned, index) => {
        const inContainer = writableInContainer(hostPaths[index]!, mounts);
        if (inContainer === undefined) {
          throw new CommandError(`the Duplicati container "${settings.duplicati.container}" cannot write into ${target}: add a writable volume of it (or of a folder above it), or choose a folder it can write`);
        }
        return { planned, path: hostPaths[index]!, inContainer };
      });
    },
  };
}

function makeFoldersStep(input: RestoreToPlanInput): Step<RestoreToRun> {
  const targets = input.paths ? targetNames(input.folder, input.paths) : [];
  return {
    name: 'make the folders',
    actions: [
      `${shellLine(makeFolderArgv(input.folder, 'folder'))} (where it is absent)`,
      ...each(input, (_, index) => [shellLine(makeFolderArgv(targets[index]!, 'folder'))], `mkdir -m 700 -- ${shellLine([input.folder])}/NAME for each data path (its folder's name; the job's added where two share one)`),
      'they stay after a failure, with what was restored into them, for a look',
    ],
    run: async (run) => {
      if (!run.into.made) await run.adapters.madePaths.makeFolder(run.into.folder, 'folder', run.signal);
      run.into.made = true;
      for (const target of run.into.targets) await run.adapters.madePaths.makeFolder(target.path, 'folder', run.signal);
    },
  };
}

function restoreIntoFolderStep(input: RestoreToPlanInput): Step<RestoreToRun> {
  const targets = input.paths ? targetNames(input.folder, input.paths) : [];
  return {
    name: 'restore into the folder',
    actions: [
      ...each(
        input,
        (dataPath, index) => [`job ${dataPath.job}: ${dataPath.source} -> ${targets[index]}: ${duplicatiRestoreCall(input, dataPath, targets[index]!)} (the restore path as the Duplicati container's volumes map it)`],
        `each data path: Duplicati restores the version into its folder in ${input.folder}`,
      ),
      'judged by the result (Error or Fatal fails it; warnings are logged) and by the files: fewer than the version holds below the source fails it',
    ],
    run: async (run) => {
      const { adapters, log, signal } = run;
      for (const { planned, path: target, inContainer } of run.into.targets) {
        throwIfAborted(signal);
        const outcome = await adapters.duplicati.restore!(
          { job: planned.version.job, backupId: planned.backupId, version: planned.version.version, filters: [folderFilter(planned.source)], restorePath: inContainer, tag: run.runId },
          signal,
        );
        log.info('restored into a folder', { job: planned.job, path: target, result: outcome.result, restored_files: outcome.restoredFiles, messages: outcome.messages });
        run.into.result.paths.push({ job: planned.job, source: planned.source, path: target, files: outcome.restoredFiles });
        if (outcome.result === 'Error' || outcome.result === 'Fatal' || outcome.restoredFiles < planned.expectedFiles) {
          throw new CommandError(`Duplicati's restore of job ${planned.job} into ${target} ended ${outcome.result} with ${outcome.restoredFiles} of ${planned.expectedFiles} files and links${outcome.messages.length ? `: ${outcome.messages.slice(0, 5).join('; ')}` : ''}`);
        }
        if (outcome.result === 'Warning') log.warn(`Duplicati's restore of job ${planned.job} into ${target} ended with warnings: ${outcome.messages.join('; ')}`);
      }
    },
  };
}

/** The steps of a restore into a folder: no stop, no swap, no start; the stack is never touched. */
export function restoreToSteps(input: RestoreToPlanInput): Step<RestoreToRun>[] {
  const steps: Array<Step<RestoreToRun> | undefined> = [restorePreflightStep(input), checkFolderStep(input), makeFoldersStep(input), pauseStep(input), restoreIntoFolderStep(input), resumeStep(input)];
  return steps.filter((step): step is Step<RestoreToRun> => step !== undefined);
}

/** The dry run's text of `restore --to DIR`. */
export function planRestoreTo(input: RestoreToPlanInput): string[] {
  return [
    `${input.stack.name}: restore ${input.choices.map((choice) => `job ${choice.job} version ${choice.version.version} (${choice.version.time})`).join(', ')} into ${input.folder}, Duplicati driver ${input.global.duplicati.driver}; the stack is not stopped`,
    ...describeSteps(restoreToSteps(input)),
    '  Whatever ends it, a paused Duplicati server is resumed.',
  ];
}

export async function restoreTo(request: RestoreRequest & { folder: string }): Promise<RestoreToResult> {
  const { global, stack, adapters, progress } = request;
  const folder = path.resolve(request.folder);
  // The pause of the exec driver is a change like any other: its undo is journaled first.
  return withOpenRun(request, { onLoss: restoreOnLoss, recover: false }, async ({ runId, journal, signal }) => {
    const log = createStackLog(global.root, stack.name, runId, adapters.clock, progress, undefined, 'restore');
    const result: RestoreToResult = { ok: false, folder, paths: [], error: undefined };
    const run: RestoreToRun = {
      ...beginStackRun({ runId, stack, global, adapters, log, signal, journal }),
      restore: { choices: request.choices, paths: [], staged: new Map(), restored: [], swapped: [], keepOld: true },
      into: { folder, made: false, targets: [], result },
    };
    try {
      const { failure } = await runSequence(restoreToSteps({ stack, global, choices: request.choices, folder }), run);
      if (failure) throw failure;
      result.ok = true;
      log.info('restore into a folder done', { folder, paths: result.paths });
    } catch (error) {
      result.error = errorMessage(error);
      log.error(`restore into ${folder} failed: ${result.error}`);
      if (error instanceof UsageError) throw error;
    } finally {
      // Whatever ended it, a pause it made is undone.
      await resumeDuplicati(run).catch((error: Error) => log.error(error.message));
      log.close();
    }
    return result;
  });
}
