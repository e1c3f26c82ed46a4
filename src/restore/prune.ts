/**
 * `restore --prune STACK`: removes what restores kept beside the stack's data, only where it is
 * still what was kept. One step per kept copy, as values: the run walks them, `--dry-run`
 * prints them and removes nothing.
 */
import { describeRemoval } from '../adapters/made-paths.js';
import { errorMessage } from '../errors.js';
import { describeSteps, runSequence, type Step } from '../steps/sequence.js';
import type { Adapters } from '../adapters/adapters.js';
import { dropKeptCopies, readKeptCopies, type KeptCopy } from './kept-copies.js';
import { withOpenRun } from '../open-run.js';
import { restoreOnLoss, type RestoreRequest } from './run.js';

export interface PruneReport {
  removed: string[];
  kept: string[];
  failed: string[];
}

interface PruneRun {
  adapters: Adapters;
  signal: AbortSignal;
  report: PruneReport;
  /** Taken off the list once the walk ends: removed, already gone, or no longer stack-backup's. */
  gone: KeptCopy[];
}

/** How long one removal may take: a kept copy is as large as the stack's data. */
const pruneTimeoutMs = 30 * 60_000;

/** One step a copy; a failure is written down and the walk goes on to the next. */
export function pruneSteps(copies: readonly KeptCopy[]): Step<PruneRun>[] {
  return copies.map((copy) => ({
    name: `remove the ${copy.what} ${copy.path}`,
    actions: [`${copy.what} of ${copy.live}, kept ${copy.at} by run ${copy.run}`, ...describeRemoval(copy.path, copy.method, `the ${copy.what} that restore kept`)],
    run: async (run) => {
      try {
        const removal = await run.adapters.madePaths.remove(copy.path, copy.identity, copy.method, pruneTimeoutMs, run.signal);
        if (removal.outcome === 'kept') run.report.kept.push(`${copy.path} (${removal.reason}): not removed, and no longer listed`);
        else run.report.removed.push(`${copy.path} (${copy.what} of ${copy.live}, kept ${copy.at})${removal.outcome === 'absent' ? ': already gone' : ''}`);
        run.gone.push(copy);
      } catch (error) {
        run.report.failed.push(`${copy.path}: ${errorMessage(error)}`);
      }
    },
  }));
}

export function keptCopiesOf(root: string, stack: string): KeptCopy[] {
  return readKeptCopies(root).filter((entry) => entry.stack === stack);
}

/** The dry run's text of `restore --prune STACK`. */
export function planPrune(stack: string, copies: readonly KeptCopy[]): string[] {
  if (copies.length === 0) return [`${stack}: nothing kept by restores to remove`];
  return [`${stack}: remove what restores kept (logs/restores.json), each only where it is still what was kept`, ...describeSteps(pruneSteps(copies))];
}

export async function pruneKept(request: Pick<RestoreRequest, 'global' | 'adapters' | 'progress' | 'signal'> & { stack: string }): Promise<PruneReport> {
  return withOpenRun(request, { onLoss: restoreOnLoss, recover: false }, async ({ signal }) => {
    const run: PruneRun = { adapters: request.adapters, signal, report: { removed: [], kept: [], failed: [] }, gone: [] };
    await runSequence(pruneSteps(keptCopiesOf(request.global.root, request.stack)), run);
    dropKeptCopies(request.global.root, run.gone);
    return run.report;
  });
}
