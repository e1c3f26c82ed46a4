/**
 * The one mapping from what went wrong to an exit code: 0 every stack backed up, 1 a stack
 * failed, 2 usage or configuration error (nothing touched), 75 another run holds the lock,
 * 128+N ended by signal N.
 */
import { CommanderError } from 'commander';
import { AbortedError, ConfigError, LockHeldError, UsageError } from './errors.js';
import type { RunReport } from './backup/run.js';

export const exitCodes = {
  success: 0,
  stackFailed: 1,
  usage: 2,
  locked: 75,
} as const;

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** Maps an error thrown out of a command (or an abort reason) to the exit code. */
export function exitCodeFor(outcome: unknown): number {
  if (outcome instanceof UsageError || outcome instanceof ConfigError) return exitCodes.usage;
  if (outcome instanceof LockHeldError) return exitCodes.locked;
  if (outcome instanceof AbortedError) return 128 + (signalNumbers[outcome.signalName] ?? 15);
  if (outcome instanceof CommanderError) return outcome.exitCode === 0 ? 0 : exitCodes.usage;
  return exitCodes.stackFailed;
}


/**
 * A finished run: its signal if it was aborted, else 1 when a stack or a recovery failed, else
 * 75 when a stack was not run because another root's run held its unit.
 */
export function exitCodeForReport(report: RunReport, signal: AbortSignal): number {
  if (signal.aborted) return exitCodeFor(signal.reason);
  const allGood = report.results.every((result) => result.ok) && report.recovery.failed.length === 0;
  if (!allGood) return exitCodes.stackFailed;
  return (report.locked?.length ?? 0) > 0 ? exitCodes.locked : exitCodes.success;
}
