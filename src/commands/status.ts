/** `stack-backup status`: the verdict, last runs, the 14-day strip and pending recovery, from files only. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { listStackNames, loadGlobalConfig, loadStack } from '../config/load.js';
import { UsageError } from '../errors.js';
import { writeJson } from '../report/json-output.js';
import { rootOf, type GlobalOptions } from './options.js';

export async function statusCommand(options: GlobalOptions & { maxAge?: string; maxUntestedAge?: string }): Promise<number> {
  const root = rootOf(options);
  const [{ readHistory }, { createJournal }, { isRootLocked }, status] = await Promise.all([
    import('../report/history.js'),
    import('../journal/journal.js'),
    import('../adapters/lock.js'),
    import('../report/status.js'),
  ]);
  let maxAge: { ms: number; now: number; configured: string[]; text: string } | undefined;
  // A missing root is a status of its own (exit 1, its path named), not a file error.
  const where = { stacksFolder: path.join(root, 'stacks'), missing: !existsSync(path.join(root, 'stacks')) };
  const configured = where.missing ? [] : listStackNames(root);
  const now = Date.now();
  if (options.maxAge !== undefined) {
    const ms = status.parseDuration(options.maxAge);
    if (ms === undefined) throw new UsageError(`--max-age: "${options.maxAge}" is not a duration (examples: 26h, 90m, 2d, 1d12h)`);
    maxAge = { ms, now, configured, text: options.maxAge };
  }
  let maxUntested: { ms: number; now: number; tested: string[]; text: string } | undefined;
  if (options.maxUntestedAge !== undefined) {
    const ms = status.parseDuration(options.maxUntestedAge);
    if (ms === undefined) throw new UsageError(`--max-untested-age: "${options.maxUntestedAge}" is not a duration (examples: 8d, 1w, 36h)`);
    // Only the stacks that have a restore test count: read from their files (cached while unchanged).
    const global = where.missing ? undefined : loadGlobalConfig(root, process.env);
    const tested = global ? configured.filter((name) => loadStack(root, name, global).restoreTest !== undefined) : [];
    maxUntested = { ms, now, tested, text: options.maxUntestedAge };
  }
  const runInProgress = where.missing ? false : await isRootLocked(root);
  const statuses = where.missing ? [] : status.stackStatuses(configured, readHistory(root), createJournal(root, '').pending(), runInProgress, now);
  // The verdict line and the exit code are one judgement: they cannot disagree.
  const { verdict, exitCode } = status.judgeStatus(statuses, where, maxAge, now, maxUntested);
  if (options.json) writeJson(process.stdout, { root, ...status.statusJson(statuses, runInProgress, maxAge, now, maxUntested, verdict), exit_code: exitCode });
  else process.stdout.write(status.formatStatus(statuses, runInProgress, maxAge, now, maxUntested, verdict));
  return exitCode;
}
