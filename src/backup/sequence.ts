/**
 * A backup's sequences, as values: stop mode's and snapshot mode's lists of steps, the shared
 * ones (src/steps/sequence.ts) and the backup's own (the jobs, the snapshots, the restore test).
 * The orchestrator walks the list, `--dry-run` prints it, and the undos it names are the records
 * the crash journal keeps. A mode is a different list of these same steps, not a branch inside them.
 */
import { armedBoundSeconds, serverUtilRunArgv } from '../adapters/duplicati.js';
import { runWaitPollSeconds } from '../adapters/duplicati-session.js';
import { describePlannedList } from '../steps/stack-containers.js';
import { createArgvs, factsArgv, markerPath, nestedArgv } from '../adapters/snapshots.js';
import type { GlobalConfig, SnapshotDriverName, SnapshotPath, StackConfig } from '../config/types.js';
import { formatSeconds } from '../format.js';
import { shellLine } from '../shell-quote.js';
import { didNotRunGraceMs, runBackupJobs, waitForDuplicatiIdleAfterStop } from '../steps/backup.js';
import type { StackRun } from '../steps/context.js';
import type { BackupRun } from '../restore-test/state.js';
import { mountTimeoutMs, preflight } from '../steps/preflight.js';
import { confirmIdleAfterStop } from '../steps/stop-watch.js';
import { describeSnapshotRemoval, describeUndo } from '../journal/undo-records.js';
import { checkSnapshotPaths, removeSnapshots, removeStaleSnapshots, restoreBeforeJobs, takeSnapshots } from '../steps/snapshot.js';
import { waitForContainers } from '../steps/wait-containers.js';
import { finishReadingSample, prepareRestoreTest, readSampleFromSnapshots, restoreAndCompare, startReadingSample } from '../restore-test/test.js';
import { containersDownStep, freezeStep, recordRead, hookStep, idleStep, idleWait, preStopStep, stopStep, type Context, type PlannedUndo, type Step } from '../steps/sequence.js';

export function preflightStep({ stack, global }: Context): Step<BackupRun> {
  const units = [stack.unit, stack.freeze?.socket, stack.freeze?.service].filter((unit): unit is string => unit !== undefined);
  return {
    name: 'preflight',
    actions: [
      'Podman API: GET /_ping',
      `Podman API: GET /containers/${global.duplicati.container}/json (must be running)`,
      ...units.map((unit) => `${shellLine(['systemctl', '--user', 'show', '--property=LoadState,ActiveState,UnitFileState', '--', unit])} (must be loaded)`),
      ...(global.duplicati.driver === 'api' ? [`GET ${global.duplicati.url}/api/v1/systeminfo: Duplicati's version (must be supported)`] : []),
      ...(global.backupMount !== undefined
        ? [`read one entry of backup_mount ${shellLine([global.backupMount])} in a child process, killed after ${formatSeconds(mountTimeoutMs)}`]
        : []),
      ...snapshotChecks(stack),
    ],
    run: async (run) => {
      await preflight(run);
      if (stack.snapshot) await checkSnapshotPaths(run);
      if (stack.restoreTest) await prepareRestoreTest(run);
    },
  };
}

/** The driver that `auto` will pick is only known once the source has been looked at. */
function driverWords(stack: StackConfig): string {
  const driver = stack.snapshot?.driver ?? 'auto';
  return driver === 'auto' ? 'driver auto (btrfs where the source is a btrfs subvolume, else reflink)' : `driver ${driver}`;
}

function driversOf(stack: StackConfig): SnapshotDriverName[] {
  const driver = stack.snapshot?.driver ?? 'auto';
  return driver === 'auto' ? ['btrfs', 'reflink'] : [driver];
}

function snapshotChecks(stack: StackConfig): string[] {
  const snapshot = stack.snapshot;
  if (!snapshot) return [];
  return snapshot.paths.flatMap((path) => [
    `${shellLine(factsArgv(path, snapshot.driver !== 'btrfs'))} (${driverWords(stack)}: the source suits it, the target's folder is on the same filesystem and writable, the target is absent or a snapshot its marker proves stack-backup's${snapshot.driver !== 'btrfs' ? '; reflink: a probe file is cloned there and removed' : ''})`,
    ...(snapshot.driver !== 'reflink' ? [`${shellLine(nestedArgv(path.source))} (btrfs: the source holds no other subvolume)`] : []),
  ]);
}

/**
 * Once the unit is stopped: its containers must exit, and Duplicati must hold no task that
 * began before the stop. Both are waits on the outside world, so they overlap; if one fails,
 * the other is ended.
 */
async function waitForStackDown(run: StackRun): Promise<void> {
  const watch = run.stopWatch;
  if (watch) {
    // Duplicati has been looked at since the stop was asked (stop-watch.ts).
    try {
      await waitForContainers(run);
      await confirmIdleAfterStop(run, await watch.settle());
    } finally {
      watch.stop();
      run.stopWatch = undefined;
    }
    return;
  }
  const controller = new AbortController();
  const forward = () => controller.abort(run.signal.reason);
  run.signal.addEventListener('abort', forward, { once: true });
  const idle = waitForDuplicatiIdleAfterStop({ ...run, signal: controller.signal });
  // Its failure is awaited below; until then it must not count as unhandled and end the process.
  idle.catch(() => {});
  try {
    await waitForContainers(run);
  } catch (error) {
    controller.abort(error);
    await idle.catch(() => {});
    throw error;
  } finally {
    run.signal.removeEventListener('abort', forward);
  }
  await idle;
}

export function stackDownStep({ stack, global }: Context): Step<BackupRun> {
  return {
    name: 'wait for the stack to be down',
    actions: [
      `Podman API: ${describePlannedList(stack)}, again on each container event, until none runs (stop_timeout ${formatSeconds(stack.stopTimeoutMs)})`,
      `then: every look since the stop showed Duplicati idle, and the record was read: go on at once; a look showed a task or a pause: ${idleWait(global, 'no task runs or is queued', { continuous: true })} (the time behind it is queue time), and the record is read with the run`,
    ],
    run: waitForStackDown,
  };
}


function snapshotActions(driver: SnapshotDriverName, path: SnapshotPath): string[] {
  const [first, ...rest] = createArgvs(driver, path).map(shellLine);
  const marker = `write ${shellLine([markerPath(path.target)])} exclusively, with what was made (filesystem, inode, birth time${driver === 'btrfs' ? ', subvolume ID' : ''}): what later removals check`;
  return driver === 'btrfs'
    ? [`${first} (RUN: this run's ID, a name no one can know beforehand; it must be nothing before and a subvolume of its own after)`, `${rest[0]} (renames without replacing anything that appeared at the target)`, marker]
    : [`${first} (fails when anything is at the target, a link too)`, marker, ...rest];
}

/** Before the stop: a stale snapshot of stack-backup's is removed, while the stack still runs. */
function staleSnapshotsStep({ stack }: Context): Step<BackupRun> | undefined {
  const paths = stack.snapshot?.paths ?? [];
  return {
    name: 'remove stale snapshots',
    actions: paths.map(
      (path) =>
        `if ${shellLine([path.target])} holds a snapshot an earlier run left (${shellLine([markerPath(path.target)])} describes exactly what is there) that Duplicati does not read: remove it, with the driver its marker names and the same checks and commands as "remove snapshots" below, before the stack is stopped; a marker whose snapshot is gone goes too`,
    ),
    run: removeStaleSnapshots,
  };
}

/** Each driver's lines; with `auto` both are shown, each line named by its driver. */
function perDriver(drivers: readonly SnapshotDriverName[], lines: (driver: SnapshotDriverName) => string[]): string[] {
  return drivers.length === 1 ? lines(drivers[0]!) : drivers.flatMap((driver) => lines(driver).map((line) => `${driver}: ${line}`));
}

/** The undo the snapshot step registers, by the name the plan shows. */
export const snapshotUndoName = 'remove snapshots';

function snapshotStep({ stack }: Context): Step<BackupRun> {
  const paths = stack.snapshot?.paths ?? [];
  const drivers = driversOf(stack);
  return {
    name: 'snapshot',
    actions: paths.flatMap((path) => [
      `look at ${shellLine([path.target])} (without following a link): it must be absent, else the stack fails and it is left alone`,
      ...perDriver(drivers, (driver) => snapshotActions(driver, path)),
    ]),
    undo: {
      name: snapshotUndoName,
      actions: paths.flatMap((path) =>
        perDriver(drivers, (driver) => describeUndo({ kind: 'remove-snapshot', driver, source: path.source, target: path.target, jobs: stack.jobs })),
      ),
    },
    run: takeSnapshots,
  };
}

export function restoreStep({ stack, global }: Context): Step<BackupRun> {
  const restore = stopStep({ stack, global }).undo!;
  const unfreeze = freezeStep({ stack, global })?.undo;
  const postStart = preStopStep({ stack, global })?.undo;
  return {
    name: 'restore the stack',
    actions: [restore, unfreeze, postStart]
      .filter((undo): undo is PlannedUndo => undo !== undefined)
      .flatMap((undo) => undo.actions.map((action) => `${undo.name}: ${action}`)),
    run: restoreBeforeJobs,
  };
}

/** Snapshot mode: the restore test reads the snapshots, restores its sample and compares, before they go. */
function snapshotRestoreTestStep({ stack, global }: Context): Step<BackupRun> | undefined {
  if (!stack.restoreTest) return undefined;
  return {
    name: 'restore test',
    actions: restoreTestActions(stack, global),
    run: async (run) => {
      await readSampleFromSnapshots(run);
      await restoreAndCompare(run);
    },
  };
}

function removeSnapshotsStep({ stack }: Context): Step<BackupRun> {
  const drivers = driversOf(stack);
  return {
    name: 'remove snapshots',
    actions: [...(stack.snapshot?.paths ?? [])].reverse().flatMap((path) => perDriver(drivers, (driver) => describeSnapshotRemoval(driver, path.target))),
    run: removeSnapshots,
  };
}

function backupStep({ stack, global }: Context): Step<BackupRun> {
  const settings = global.duplicati;
  const down = !stack.snapshot;
  const lastJob = stack.jobs.length - 1;
  /** Stop mode, last job, no post_backup hooks: the verdict waits until the stack runs again. */
  const later = (index: number) => down && index === lastJob && stack.hooks.post_backup.length === 0;
  const runCall = (job: string, index: number) =>
    settings.driver === 'exec'
      ? [
          `${index === 0 && down ? `job ${job}'s record as read while the stack stopped` : `job ${job}'s ID and record (${recordRead(global)})`}; then the line "run" to the podman exec opened for job ${job} (${index === 0 ? 'before the stop' : 'while the job before it ran'}), which runs ${shellLine(['timeout', '-s', 'KILL', String(armedBoundSeconds(settings)), settings.serverUtil, 'run', '--wait', '--poll-interval', String(runWaitPollSeconds), '--', job])}: the job is queued once it prints "Waiting for backup to finish..." (run_timeout ${formatSeconds(settings.runTimeoutMs)}, after which it is ended inside the container and the job followed by polling)`,
          `were that podman exec gone: ${shellLine(serverUtilRunArgv(settings, job))} (run_timeout ${formatSeconds(settings.runTimeoutMs)}): job ${job}'s record (LastBackupFinished, LastErrorDate) just before the run, then the run, in one podman exec`,
        ]
      : [
          `POST ${settings.url}/api/v1/backup/ID/run, ID the backup named ${shellLine([job])} in GET ${settings.url}/api/v1/backups${index === 0 && down ? ' (read while the stack stopped, with its record)' : ', with its record'} (run_timeout ${formatSeconds(settings.runTimeoutMs)})`,
        ];
  const follow = (job: string, index: number) =>
    settings.driver === 'exec'
      ? idleWait(
          global,
          `job ${job} is neither queued nor active and was seen there or its record changed (neither within ${formatSeconds(didNotRunGraceMs)} after run: it did not run); ID is job ${job}'s backup ID${later(index) ? '' : ', and the records are read only once it is neither queued nor active'}`,
          { ...(later(index) ? {} : { jobsOnceGone: 'ID' }), continuous: down },
        )
      : `GET ${settings.url}/api/v1/task/TASK for the task that run returned, woken by ${settings.url}/api/v1/serverstate?longpoll=true, until it is Completed or Failed (wait_timeout ${formatSeconds(settings.waitTimeoutMs)}, paused_timeout ${formatSeconds(settings.pausedTimeoutMs)}); on giving up, POST .../task/TASK/stop, then /abort`;
  const result = (job: string, index: number) => {
    const when = later(index) ? 'once the stack runs again (reading it costs calls the downtime need not wait for): ' : '';
    return settings.driver === 'exec'
      ? `${when}job ${job}'s record${later(index) ? ` (${recordRead(global)})` : ' as the last poll read it'} and the last line of its run --wait: LastErrorDate changed fails the stack; LastBackupFinished changed is the result "Backup status:" gives (2.2.0.3 and later: Error fails the stack${settings.warningsFail ? ', and Warning (warnings_fail)' : ''}), else "completed" (the record holds no result); neither fails it`
      : `${when}GET ${settings.url}/api/v1/backup/ID/log?pagesize=5: job ${job}'s result (Error and Fatal fail the stack${settings.warningsFail ? ', and Warning (warnings_fail)' : ''}; a Failed task fails it with its message)`;
  };
  return {
    name: 'backup jobs',
    actions: stack.jobs.flatMap((job, index) => [...runCall(job, index), follow(job, index), result(job, index)]),
    run: runBackupJobs,
  };
}

/** Stop mode: the restore test reads its sample from the stopped stack's data while the job runs. */
function restoreTestReadStep({ stack }: Context): Step<BackupRun> | undefined {
  if (!stack.restoreTest) return undefined;
  return {
    name: 'restore test: start reading the sample',
    actions: [
      `pick ${describeSample(stack)} of the regular files and symlinks of the stopped stack's data (a cryptographic random pick; what the job's filters leave out is left out), and read each one's size, mode, owner, group, mtime, link target and SHA-256 inside podman unshare, while the job runs`,
    ],
    run: async (run) => startReadingSample(run),
  };
}

function restoreTestFinishStep({ stack }: Context): Step<BackupRun> | undefined {
  if (!stack.restoreTest) return undefined;
  return {
    name: 'restore test: finish reading the sample',
    actions: ['wait for the reading to end before the stack starts again (its data is frozen only until then)'],
    run: finishReadingSample,
  };
}

function describeSample(stack: StackConfig): string {
  const sample = stack.restoreTest?.sample;
  if (sample === undefined || sample === 'all') return 'every one';
  return 'count' in sample ? `${sample.count}` : `${sample.percent}%`;
}

/** The restore test's own actions, for the dry run: after the stack is started (stop mode) or before the snapshots go. */
export function restoreTestActions(stack: StackConfig, global: GlobalConfig): string[] {
  if (!stack.restoreTest) return [];
  const restore = global.duplicati.driver === 'api' ? `POST ${global.duplicati.url}/api/v1/backup/ID/restore with the sampled paths and the version's exact time` : "duplicati-cli restore with the sampled paths and the version's number, the job's export, the server paused";
  return [
    ...(stack.snapshot ? [`pick ${describeSample(stack)} of the regular files and symlinks of the snapshots and read them inside podman unshare, as above`] : []),
    'the version the job just made (the newest, made since the backup began)',
    'mkdir -m 700 -- DATA.stack-backup-test-RUN beside each data path (its removal journaled first)',
    `${restore} into it; Duplicati puts each file relative to the sample's common folder`,
    "compare each restored file with the frozen source's: contents, size, mode, owner, group, mtime (at Duplicati's 100 ns), link target; and the number of files in the version with the frozen source's (count_tolerance)",
    'remove the scratch folder, whatever happened',
  ];
}

/** The verify hooks: after the restore, only when everything before succeeded. */
export function verifyStep(context: Context): Step<BackupRun> | undefined {
  return hookStep(context, 'verify');
}

/** The forward steps of stop mode: the stack is stopped while its jobs run. */
export function stopModeSteps(stack: StackConfig, global: GlobalConfig): Step<BackupRun>[] {
  const context = { stack, global };
  const steps = [
    preflightStep(context),
    idleStep(context, { backup: true }),
    preStopStep(context),
    freezeStep(context),
    stopStep(context, { watchDuplicati: true }),
    stackDownStep(context),
    hookStep(context, 'post_stop'),
    hookStep(context, 'pre_backup'),
    restoreTestReadStep(context),
    backupStep(context),
    restoreTestFinishStep(context),
    hookStep(context, 'post_backup'),
  ];
  return steps.filter((step): step is Step<BackupRun> => step !== undefined);
}

/**
 * The forward steps of snapshot mode: the stack is down only from the stop to the start, while
 * its data is snapshotted; its jobs back up the snapshots with the stack running again.
 */
export function snapshotModeSteps(stack: StackConfig, global: GlobalConfig): Step<BackupRun>[] {
  const context = { stack, global };
  const steps = [
    preflightStep(context),
    staleSnapshotsStep(context),
    preStopStep(context),
    freezeStep(context),
    stopStep(context),
    containersDownStep(context),
    hookStep(context, 'post_stop'),
    snapshotStep(context),
    restoreStep(context),
    hookStep(context, 'pre_backup'),
    idleStep(context, { backup: true }),
    backupStep(context),
    hookStep(context, 'post_backup'),
    snapshotRestoreTestStep(context),
    removeSnapshotsStep(context),
  ];
  return steps.filter((step): step is Step<BackupRun> => step !== undefined);
}

/** The forward steps of a stack's run in its mode. */
export function stackSteps(stack: StackConfig, global: GlobalConfig): Step<BackupRun>[] {
  return stack.snapshot ? snapshotModeSteps(stack, global) : stopModeSteps(stack, global);
}
