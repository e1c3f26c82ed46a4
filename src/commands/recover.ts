/** `stack-backup recover`: replays the crash journal of a run that died. */
import { listStackNames, loadGlobalConfig } from '../config/load.js';
import { assertOnlyUserCanWrite } from '../config/permissions.js';
import { LockHeldError } from '../errors.js';
import { exitCodes } from '../exit-codes.js';
import { rootOf, type GlobalOptions } from './options.js';
import { withSignals } from './signals.js';

export async function recoverCommand(options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  const global = loadGlobalConfig(root, process.env);
  assertOnlyUserCanWrite(root, []);
  const [{ acquireRootLock }, { createJournal }, { recoverPending }, { createRecoveryAdapters }, { createProgress }, { randomUUID }, { writeMetricsFile }] =
    await Promise.all([
      import('../adapters/lock.js'),
      import('../journal/journal.js'),
      import('../recover.js'),
      import('../adapters/real.js'),
      import('../report/report.js'),
      import('node:crypto'),
      import('../report/metrics.js'),
    ]);
  if (options.dryRun) {
    // Reads the journal only: no lock taken, nothing run.
    const { isRootLocked } = await import('../adapters/lock.js');
    const { recoveryPlan } = await import('../recover.js');
    process.stdout.write(`${recoveryPlan(createJournal(root, '').pending(), await isRootLocked(root)).join('\n')}\n`);
    return exitCodes.success;
  }
  const adapters = createRecoveryAdapters(global);
  const progress = createProgress(process.stderr, adapters.clock, options.quiet ? 'quiet' : options.verbose ? 'verbose' : 'normal');
  return withSignals((text) => progress.message(text), 'leaving the journal consistent', async (signal) => {
    const release = await lockWhenFree(() => acquireRootLock(root, (error) => progress.message(`warning: the lock was lost: ${error.message}`)), signal);
    // The metrics show what the journal holds once recover is done: under the timer, recover
    // runs after every run (ExecStopPost=), so what a killed run left shows at once.
    const writeMetrics = () => {
      if (global.metricsFile) writeMetricsFile(root, global.metricsFile, () => listStackNames(root), (text) => progress.message(text));
    };
    try {
      const runId = randomUUID();
      const journal = createJournal(root, runId);
      if (journal.pending().length === 0) {
        writeMetrics();
        process.stdout.write('nothing to recover: no run left a stack stopped or frozen\n');
        return exitCodes.success;
      }
      const report = await recoverPending(root, journal, runId, { ...adapters, progress, signal });
      writeMetrics();
      for (const line of report.restored) process.stdout.write(`recovered: ${line}\n`);
      for (const line of report.failed) process.stdout.write(`NOT RECOVERED: ${line}\n`);
      if (signal.aborted && journal.pending().length > 0) {
        process.stdout.write('stopped by a signal: what is left stays in the journal; run "stack-backup recover" again\n');
      }
      return report.failed.length === 0 ? exitCodes.success : exitCodes.stackFailed;
    } finally {
      await release().catch(() => {});
    }
  });
}

/**
 * How long recover waits for the lock of a run that died to count as stale (it stops being
 * refreshed when the run is killed, and is stale 5 s later), as when systemd's ExecStopPost=
 * starts it right after killing the run. A live run keeps its lock fresh: then exit 75.
 */
export const lockWaitMs = 20_000;

async function lockWhenFree<T>(acquire: () => Promise<T>, signal: AbortSignal): Promise<T> {
  const deadline = Date.now() + lockWaitMs;
  for (;;) {
    try {
      return await acquire();
    } catch (error) {
      if (!(error instanceof LockHeldError)) throw error;
      if (Date.now() >= deadline || signal.aborted) {
        throw new LockHeldError(`${error.message}: a run is in progress, and the journal of a live run is never replayed`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
