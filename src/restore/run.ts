/**
 * A restore run: opened as every run is (src/open-run.ts: the root's lock, the unit's, what a
 * run that died left put back first), the stack's restore, and what it keeps written down for
 * `--prune`; the dry run's read-only look at the data paths.
 */
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { createStackLog, discardingLog, type StackLog } from '../report/logging.js';
import { type RecoveryReport } from '../recover.js';
import { formatSeconds } from '../format.js';
import { formatTable, type Progress, type TextSink } from '../report/report.js';
import type { Adapters } from '../adapters/adapters.js';
import { beginStackRun } from '../steps/context.js';
import { withOpenRun } from '../open-run.js';
import type { ChosenVersion } from './choose.js';
import type { PlannedPath, RestoreRun } from './context.js';
import { addKeptCopies, type KeptCopy } from './kept-copies.js';
import { restoreStack, type RestoreResult } from './orchestrator.js';
import { restoreSteps } from './sequence.js';
import { restorePreflight } from './steps.js';

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

/** What a restore does once a lock is lost, and says it did. */
export const restoreOnLoss = { doing: 'ending the restore the way back', ended: 'the restore was ended' };

export async function runRestore(request: RestoreRequest): Promise<RestoreReport> {
  const { global, stack, adapters, progress } = request;
  return withOpenRun(request, { onLoss: restoreOnLoss, unit: stack.unit, recover: true }, async ({ runId, journal, signal, recovery }) => {
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
