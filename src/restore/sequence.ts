/**
 * A restore's sequence, as values: the same steps as a backup's where they are the same (the
 * preflight's checks, the hooks, the freeze, the stop and its undo, the wait for the
 * containers, the start), and the restore's own between them (staging folders, Duplicati's
 * restore, the swap). The orchestrator walks this list; `restore --dry-run` prints it.
 */
import { cliArgv, exportArgv } from '../adapters/duplicati-cli.js';
import { describeRemoval, makeFolderArgv } from '../adapters/made-paths.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { shellLine } from '../shell-quote.js';
import { containersDownStep, describeSteps, freezeStep, hookStep, idleStep, preStopStep, stopStep, type PlannedUndo, type Step } from '../steps/sequence.js';
import { describeUndo, undoName } from '../journal/undo-records.js';
import type { ChosenVersion } from './choose.js';
import type { RestoreRun } from './context.js';
import type { DataPath } from './data-paths.js';
import { folderFilter, makeStagingFolders, pauseDuplicati, restoreIntoStaging, restorePreflight, resumeDuplicati, startStack, swapBack, swapIntoPlace } from './steps.js';

/** What the plan knows before it runs: the versions chosen and, where they could be read, the data paths. */
export interface RestorePlanInput {
  stack: StackConfig;
  global: GlobalConfig;
  choices: readonly ChosenVersion[];
  /** Undefined when they could not be read (the dry run then names them in words). */
  paths?: readonly DataPath[] | undefined;
}

export const each = (input: RestorePlanInput, line: (path: DataPath, index: number) => string[], otherwise: string): string[] =>
  input.paths && input.paths.length > 0 ? input.paths.flatMap(line) : [otherwise];

export function restorePreflightStep(input: RestorePlanInput): Step<RestoreRun> {
  const { global, choices } = input;
  const api = global.duplicati.driver === 'api';
  return {
    name: 'preflight',
    actions: [
      'Podman API: GET /_ping; the Duplicati container must run; the units must exist (as for a backup)',
      ...choices.map(
        (choice) =>
          `job ${choice.job}: version ${choice.version.version} of ${choice.version.time} must still exist (${api ? `GET ${global.duplicati.url}/api/v1/backup/${choice.backupId}/filesets` : `${shellLine(exportArgv(global.duplicati, choice.backupId))}, then duplicati-cli find`}); its files below each source are listed (what the restore must write)`,
      ),
      `the data paths: each job's sources (${api ? `GET ${global.duplicati.url}/api/v1/backup/ID` : 'its export'}), mapped to the host through the Duplicati container's volumes (Podman API: GET /containers/${global.duplicati.container}/json); the container must write beside each through a volume of its folder`,
      'nothing at the staging and old names; room on each filesystem for the version (and a little more)',
    ],
    run: (run) => restorePreflight(run),
  };
}

function stagingStep(input: RestorePlanInput): Step<RestoreRun> {
  return {
    name: 'make staging folders',
    actions: each(input, (path) => [`${shellLine(makeFolderArgv(path.staging, path.kind))} (fails on anything there; a subvolume where the data is one)`], 'mkdir -m 700 -- PATH.stack-backup-restore-RUN beside each data path (btrfs subvolume create where the data is a subvolume)'),
    undo: {
      name: 'remove restore staging folders',
      actions: each(
        input,
        (path) => describeUndo({ kind: 'remove-made', what: 'restore staging folder', path: path.staging, method: path.kind === 'btrfs-subvolume' ? 'btrfs-subvolume' : 'files', jobs: [path.job] }),
        describeRemoval('PATH.stack-backup-restore-RUN', 'files', 'the staging folder stack-backup made').join('; '),
      ),
    },
    run: (run) => makeStagingFolders(run),
  };
}

export function pauseStep({ global }: RestorePlanInput): Step<RestoreRun> | undefined {
  if (global.duplicati.driver !== 'exec') return undefined;
  const record = { kind: 'resume-duplicati' as const, container: global.duplicati.container, serverUtil: global.duplicati.serverUtil };
  return {
    name: 'pause the Duplicati server',
    actions: [`podman exec ${global.duplicati.container} ${global.duplicati.serverUtil} pause (duplicati-cli reads the job's database outside the server: no task may open it meanwhile); then its status must show no active task`],
    undo: { name: undoName(record), actions: describeUndo(record) },
    run: (run) => pauseDuplicati(run),
  };
}

export function resumeStep({ global }: RestorePlanInput): Step<RestoreRun> | undefined {
  if (global.duplicati.driver !== 'exec') return undefined;
  return {
    name: 'resume the Duplicati server',
    actions: [`podman exec ${global.duplicati.container} ${global.duplicati.serverUtil} resume`],
    run: (run) => resumeDuplicati(run),
  };
}

/** Duplicati's restore of one data path's version into a folder, as its driver calls it. */
export function duplicatiRestoreCall(input: RestorePlanInput, path: DataPath, restorePathInContainer: string): string {
  const settings = input.global.duplicati;
  const choice = input.choices.find((candidate) => candidate.backupId === path.backupId);
  const version = choice ? `${choice.version.version}` : 'N';
  if (settings.driver === 'api') {
    return `POST ${settings.url}/api/v1/backup/${path.backupId}/restore {"paths": ["${folderFilter(path.source)}"], "time": "${choice?.version.duplicatiTime ?? 'TIME'}", "restore_path": "${restorePathInContainer}", "overwrite": false, "permissions": true, "skip_metadata": false}; GET .../task/TASK until it ends (an abort stops it: POST .../task/TASK/abort); its Result row in GET .../backup/${path.backupId}/log`;
  }
  return `${shellLine(exportArgv(settings, path.backupId))} (the job's storage, options and database, its secrets read back and removed at once), then ${shellLine(
    cliArgv(settings, 'RUN', Math.ceil(settings.waitTimeoutMs / 1000), ['restore', 'STORAGE-URL', folderFilter(path.source), `--restore-path=${restorePathInContainer}`, `--version=${version}`, '--overwrite=false', '--restore-permissions=true', '--skip-metadata=false']),
  )} (the storage URL, options and passphrase in the parameters file, written from standard input and removed when the CLI ends)`;
}

function restoreJobsStep(input: RestorePlanInput): Step<RestoreRun> {
  return {
    name: 'restore into staging',
    actions: [
      ...each(input, (path) => [`job ${path.job}: ${path.source} -> ${path.staging}: ${duplicatiRestoreCall(input, path, path.stagingInContainer)}`], `each data path: Duplicati restores the version into its staging folder`),
      'judged by the result (Error, Fatal or any warning fails it) and by the files: fewer than the version holds below the source, or not where they belong, fails it',
    ],
    run: (run) => restoreIntoStaging(run),
  };
}

function swapStep(input: RestorePlanInput): Step<RestoreRun> {
  const rename = (from: string, to: string) => `mv -n -T -- ${shellLine([from])} ${shellLine([to])}`;
  return {
    name: 'swap into place',
    actions: [
      ...each(
        input,
        (path) => [
          `the staging folder gets the owner, group, mode and mtime of ${shellLine([path.live])} (chown/chmod --reference, touch -r, inside podman unshare)`,
          `${rename(path.live, path.old)} (inside podman unshare, its way back journaled first)`,
          `${rename(path.staging, path.live)} (likewise)`,
        ],
        'each data path: PATH -> PATH.stack-backup-old-RUN, then PATH.stack-backup-restore-RUN -> PATH, each rename journaled before it is made',
      ),
    ],
    undo: {
      name: 'rename back',
      actions: each(input, (path) => [`${rename(path.live, path.staging)}, then ${rename(path.old, path.live)}: the old data back in place, the restored copy kept`], 'the restored copy back to its staging name, the old data back in place'),
    },
    run: (run) => swapIntoPlace(run),
  };
}

function startStep(input: RestorePlanInput): Step<RestoreRun> {
  const undos = [stopStep(input).undo, freezeStep(input)?.undo, preStopStep(input)?.undo].filter((undo): undo is PlannedUndo => undo !== undefined);
  return {
    name: 'start the stack',
    actions: undos.flatMap((undo) => undo.actions.map((action) => `${undo.name}: ${action}`)),
    run: (run) => startStack(run),
  };
}

/** A step of the way back that runs only once the stack was started on the restored data: else it is down already. */
function onceStarted(step: Step<RestoreRun>): Step<RestoreRun> {
  return { ...step, actions: [...step.actions, '(only if the stack had been started on the restored data)'], run: async (run) => (run.restore.started ? step.run(run) : undefined) };
}

function renameBackStep(input: RestorePlanInput): Step<RestoreRun> {
  return {
    name: 'rename back',
    actions: swapStep(input).undo!.actions,
    run: async (run) => {
      const failures = await swapBack(run);
      if (failures.length > 0) {
        (run.earlyUndoFailures ??= []).push(...failures);
        throw new Error(failures.map((failure) => `${failure.name}: ${failure.error.message}`).join('; '));
      }
      run.restore.rolledBack = true;
    },
  };
}

/**
 * The way back after a swap, when the start or a verify hook failed: stopped again as before
 * (hooks, freeze, stop, wait), the old data renamed back; the start follows with the undos.
 */
export function rollbackSteps(input: RestorePlanInput): Step<RestoreRun>[] {
  const context = { stack: input.stack, global: input.global };
  const stopAgain = [preStopStep(context), freezeStep(context), stopStep(context), containersDownStep(context)].filter((step): step is Step<RestoreRun> => step !== undefined);
  return [...stopAgain.map(onceStarted), renameBackStep(input)];
}

/**
 * The forward steps of a restore. The stack is down from the stop to the start; if the start or
 * a verify hook fails after the swap, the stack is stopped again, the old data swapped back and
 * the stack started on it (the orchestrator's way back).
 */
export function restoreSteps(input: RestorePlanInput): Step<RestoreRun>[] {
  const context = { stack: input.stack, global: input.global };
  const steps = [
    restorePreflightStep(input),
    idleStep(context),
    preStopStep(context),
    freezeStep(context),
    stopStep(context),
    containersDownStep(context),
    hookStep(context, 'post_stop'),
    stagingStep(input),
    pauseStep(input),
    restoreJobsStep(input),
    resumeStep(input),
    swapStep(input),
    startStep(input),
    hookStep(context, 'verify'),
  ];
  return steps.filter((step): step is Step<RestoreRun> => step !== undefined);
}

/** The dry run's text: each step with its actions, then what happens after a failure. */
export function planRestore(input: RestorePlanInput): string[] {
  const lines = [
    `${input.stack.name}: restore ${input.choices.map((choice) => `job ${choice.job} version ${choice.version.version} (${choice.version.time})`).join(', ')}, Duplicati driver ${input.global.duplicati.driver}`,
  ];
  lines.push(...describeSteps(restoreSteps(input)));
  lines.push(
    '  A failure before the swap: the undos above, last first (the staging folders go last, after the stack is started on its old data).',
    '  A failure of the start or of a verify hook after the swap: this way back (the old data back in place, the restored copy kept and named), then the undos above (the start):',
    ...describeSteps(rollbackSteps(input)),
    `  After success: the old data stays as PATH.stack-backup-old-RUN (stack-backup restore --prune ${input.stack.name} removes it)${input.stack.restore.keepOld ? '' : '; restore.keep_old is false, so it is removed at once'}.`,
  );
  return lines;
}
