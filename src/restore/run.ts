/**
 * A restore run: the root's lock (no backup runs meanwhile) and the unit's, what a run that died
 * left put back first (the crash journal), the stack's restore, and what it keeps written down
 * for `--prune`. Also the two restores that leave the stack alone: into a folder of the user's
 * (`--to DIR`), and the removal of kept copies (`--prune`).
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { acquireRootLock } from '../adapters/lock.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { CommandError, LockLostError, UsageError, errorMessage } from '../errors.js';
import { createJournal } from '../journal/journal.js';
import { createStackLog, discardingLog, type StackLog } from '../report/logging.js';
import { recoverPending, type RecoveryReport } from '../recover.js';
import { formatSeconds } from '../format.js';
import { formatTable, type Progress, type TextSink } from '../report/report.js';
import { beginStackRun, type Adapters } from '../steps/context.js';
import type { ChosenVersion } from './choose.js';
import type { PlannedPath, RestoreRun } from './context.js';
import { writableInContainer } from './data-paths.js';
import { addKeptCopies, dropKeptCopies, readKeptCopies, type KeptCopy } from './kept-copies.js';
import { restoreStack, type RestoreResult } from './orchestrator.js';
import { restoreSteps } from './sequence.js';
import { folderFilter, pauseDuplicati, restorePreflight, resumeDuplicati } from './steps.js';
import { lookTimeoutMs } from '../adapters/made-paths.js';

export interface RestoreRequest {
  global: GlobalConfig;
  stack: StackConfig;
  choices: ChosenVersion[];
  adapters: Adapters;
  progress: Progress;
  output: TextSink;
  signal: AbortSignal;
}

export interface RestoreReport {
  recovery: RecoveryReport;
  result: RestoreResult;
}

/** Takes the root's lock, and ends the work (restoring the stack under way) when a lock is lost. */
async function underLocks<T>(request: Pick<RestoreRequest, 'global' | 'progress' | 'signal' | 'adapters'>, unit: string | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const { global, progress, adapters } = request;
  const lost = new AbortController();
  const onLost = (what: string) => (error: Error) => {
    if (lost.signal.aborted) return;
    progress.message(`error: ${what} was lost (${error.message}); ending the restore the way back`);
    lost.abort(new LockLostError(`${what} was lost (${error.message}), so another run could start meanwhile: the restore was ended`));
  };
  const releaseRoot = await acquireRootLock(global.root, onLost(`the lock of ${global.root}`));
  try {
    const releaseUnit = unit === undefined ? undefined : await adapters.lockUnit(unit, onLost(`the lock of unit ${unit}`));
    try {
      return await work(AbortSignal.any([request.signal, lost.signal]));
    } finally {
      await releaseUnit?.().catch(() => {});
    }
  } finally {
    await releaseRoot().catch(() => {});
  }
}

export async function runRestore(request: RestoreRequest): Promise<RestoreReport> {
  const { global, stack, adapters, progress } = request;
  return underLocks(request, stack.unit, async (signal) => {
    const runId = randomUUID();
    const journal = createJournal(global.root, runId);
    let recovery: RecoveryReport = { restored: [], failed: [] };
    if (journal.pending().length > 0) {
      progress.message('warning: a previous run ended before restoring its stack; recovering first');
      recovery = await recoverPending(global.root, journal, runId, { ...adapters, duplicati: () => adapters.duplicati, progress, signal });
    }
    const log = createStackLog(global.root, stack.name, runId, adapters.clock, progress, undefined, 'restore');
    let result: RestoreResult;
    try {
      const run: RestoreRun = {
        ...beginStackRun({ runId, stack, global, adapters, log, signal, journal }),
        restore: { choices: request.choices, paths: [], staged: new Map(), restored: [], swapped: [], keepOld: stack.restore.keepOld },
      };
      result = await restoreStack(run, restoreSteps({ stack, global, choices: request.choices }));
      recordKept(global.root, run, result, log);
    } finally {
      log.close();
    }
    for (const line of recovery.restored) request.output.write(`recovered: ${line}\n`);
    for (const line of recovery.failed) request.output.write(`NOT RECOVERED: ${line}\n`);
    request.output.write(`\n${formatRestoreSummary(result)}`);
    return { recovery, result };
  });
}

/** What the restore kept beside the data, with its identity, for `--prune`; a failure to write it is a warning. */
function recordKept(root: string, run: RestoreRun, result: RestoreResult, log: StackLog): void {
  const at = new Date(run.adapters.clock.now()).toISOString();
  const copies: KeptCopy[] = [];
  for (const planned of run.restore.paths) {
    const shown = result.paths.find((entry) => entry.path === planned.live);
    const method = planned.kind === 'btrfs-subvolume' ? 'btrfs-subvolume' : 'files';
    if (shown?.old && planned.liveIdentity) copies.push({ stack: run.stack.name, run: run.runId, at, what: 'old data', live: planned.live, path: shown.old, identity: planned.liveIdentity, method });
    const staged = run.restore.staged.get(planned.live);
    if (shown?.restoredCopy && staged) copies.push({ stack: run.stack.name, run: run.runId, at, what: 'restored copy', live: planned.live, path: shown.restoredCopy, identity: staged.identity, method });
  }
  try {
    addKeptCopies(root, copies);
  } catch (error) {
    log.warn(`cannot write down what the restore kept (${errorMessage(error)}): remove ${copies.map((copy) => copy.path).join(', ')} yourself once you no longer need them`);
  }
}

function resultWord(result: RestoreResult): string {
  if (result.restored) return 'restored';
  if (result.notRestored) return 'FAILED, NOT RESTORED';
  return result.rolledBack ? 'FAILED, old data back' : 'FAILED, nothing changed';
}

export function formatRestoreSummary(result: RestoreResult): string {
  const notes = [
    ...result.versions.map((version) => `job ${version.job} version ${version.version} (${version.time})`),
    ...result.paths.flatMap((entry) => [
      ...(entry.files !== undefined && result.restored ? [`${entry.path}: ${entry.files} files and links restored`] : []),
      ...(entry.old ? [`old data kept at ${entry.old}`] : []),
      ...(entry.restoredCopy ? [`the restored copy is kept at ${entry.restoredCopy}, for a look`] : []),
    ]),
    ...result.kept.map((kept) => `kept ${kept}`),
    ...(result.error ? [result.error] : []),
    ...result.restoreErrors.map((text) => `restore: ${text}`),
    ...result.unrecorded,
  ];
  const lines = formatTable(['STACK', 'RESULT', 'DOWNTIME', 'TOTAL'], [[result.stack, resultWord(result), formatSeconds(result.downtimeMs), formatSeconds(result.durationMs)]]);
  const keptAny = result.paths.some((entry) => entry.old || entry.restoredCopy);
  return `${[...lines, ...notes.map((note) => `  ${note}`), ...(keptAny ? [`  To remove what is kept: stack-backup restore --prune ${result.stack}`] : []), `  Log: ${result.logFile}`].join('\n')}\n`;
}

export interface PruneReport {
  removed: string[];
  kept: string[];
  failed: string[];
}

/** `restore --prune STACK`: removes what restores kept beside the stack's data, only where it is still what was kept. */
export async function pruneKept(request: Pick<RestoreRequest, 'global' | 'adapters' | 'progress' | 'signal'> & { stack: string }): Promise<PruneReport> {
  return underLocks(request, undefined, async (signal) => {
    const report: PruneReport = { removed: [], kept: [], failed: [] };
    const gone: KeptCopy[] = [];
    for (const copy of readKeptCopies(request.global.root).filter((entry) => entry.stack === request.stack)) {
      try {
        const removal = await request.adapters.madePaths.remove(copy.path, copy.identity, copy.method, 30 * 60_000, signal);
        if (removal.outcome === 'kept') report.kept.push(`${copy.path} (${removal.reason}): not removed, and no longer listed`);
        else report.removed.push(`${copy.path} (${copy.what} of ${copy.live}, kept ${copy.at})${removal.outcome === 'absent' ? ': already gone' : ''}`);
        gone.push(copy);
      } catch (error) {
        report.failed.push(`${copy.path}: ${errorMessage(error)}`);
      }
    }
    dropKeptCopies(request.global.root, gone);
    return report;
  });
}

/** The dry run's look at the data paths: the restore's preflight, reading only, logging nothing; its problem said rather than thrown. */
export async function readPlannedPaths(request: Pick<RestoreRequest, 'global' | 'stack' | 'choices' | 'adapters' | 'signal'>): Promise<{ paths: PlannedPath[] | undefined; problem: string | undefined }> {
  const run: RestoreRun = {
    ...beginStackRun({ runId: 'RUN', stack: request.stack, global: request.global, adapters: request.adapters, log: discardingLog('(dry run: no log)'), signal: request.signal, journal: undefined }),
    restore: { choices: request.choices, paths: [], staged: new Map(), restored: [], swapped: [], keepOld: request.stack.restore.keepOld },
  };
  try {
    await restorePreflight(run);
    return { paths: run.restore.paths, problem: undefined };
  } catch (error) {
    return { paths: undefined, problem: errorMessage(error) };
  }
}

export interface RestoreToResult {
  ok: boolean;
  folder: string;
  paths: Array<{ job: string; source: string; path: string; files: number | undefined }>;
  error: string | undefined;
}

/**
 * `restore STACK --to DIR`: the stack's data restored into DIR (absent or empty), one folder per
 * data path, the stack untouched: for picking single files. Owners and modes come back as they
 * were (subordinate UIDs: read them with `podman unshare`).
 */
export async function restoreTo(request: RestoreRequest & { folder: string }): Promise<RestoreToResult> {
  const { global, stack, adapters, progress } = request;
  const folder = path.resolve(request.folder);
  return underLocks(request, undefined, async (signal) => {
    const runId = randomUUID();
    const log = createStackLog(global.root, stack.name, runId, adapters.clock, progress, undefined, 'restore');
    const result: RestoreToResult = { ok: false, folder, paths: [], error: undefined };
    const run: RestoreRun = {
      // The pause of the exec driver is a change like any other: its undo is journaled first.
      ...beginStackRun({ runId, stack, global, adapters, log, signal, journal: createJournal(global.root, runId) }),
      restore: { choices: request.choices, paths: [], staged: new Map(), restored: [], swapped: [], keepOld: true },
    };
    try {
      await restorePreflight(run);
      const look = await adapters.madePaths.look(folder, signal);
      if (look.kind === 'link' || look.kind === 'other') throw new UsageError(`--to ${folder}: it is not a folder`);
      if (look.kind === 'folder') {
        const contents = await adapters.madePaths.contents(folder, [], lookTimeoutMs, signal);
        if (contents.names.length > 0) throw new UsageError(`--to ${folder}: it is not empty (${contents.names.slice(0, 3).join(', ')}${contents.names.length > 3 ? ', ...' : ''})`);
      } else {
        await adapters.madePaths.makeFolder(folder, 'folder', signal);
      }
      const mounts = (await adapters.engine.containerMounts?.(global.duplicati.container, signal)) ?? [];
      const names = new Set<string>();
      for (const planned of run.restore.paths) {
        let name = path.basename(planned.live);
        if (names.has(name)) name = `${name}-${planned.job}`;
        names.add(name);
        const target = path.join(folder, name);
        const inContainer = writableInContainer(target, mounts);
        if (inContainer === undefined) {
          throw new CommandError(`the Duplicati container "${global.duplicati.container}" cannot write into ${folder}: add a writable volume of it (or of a folder above it), or choose a folder it can write`);
        }
        await adapters.madePaths.makeFolder(target, 'folder', signal);
        await pauseDuplicati(run);
        try {
          const outcome = await adapters.duplicati.restore!(
            { job: planned.version.job, backupId: planned.backupId, version: planned.version.version, filters: [folderFilter(planned.source)], restorePath: inContainer, tag: runId },
            signal,
          );
          log.info('restored into a folder', { job: planned.job, path: target, result: outcome.result, restored_files: outcome.restoredFiles, messages: outcome.messages });
          result.paths.push({ job: planned.job, source: planned.source, path: target, files: outcome.restoredFiles });
          if (outcome.result === 'Error' || outcome.result === 'Fatal' || outcome.restoredFiles < planned.expectedFiles) {
            throw new CommandError(`Duplicati's restore of job ${planned.job} into ${target} ended ${outcome.result} with ${outcome.restoredFiles} of ${planned.expectedFiles} files and links${outcome.messages.length ? `: ${outcome.messages.slice(0, 5).join('; ')}` : ''}`);
          }
          if (outcome.result === 'Warning') log.warn(`Duplicati's restore of job ${planned.job} into ${target} ended with warnings: ${outcome.messages.join('; ')}`);
        } finally {
          await resumeDuplicati(run).catch((error: Error) => log.error(error.message));
        }
      }
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
