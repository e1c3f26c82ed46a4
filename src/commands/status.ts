/** `stack-backup status`: last runs and pending recovery, from files only. */
import { listStackNames } from '../config/load.js';
import { rootOf, type GlobalOptions } from './options.js';

export async function statusCommand(options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  const [{ readHistory }, { createJournal }, { isRootLocked }, { stackStatuses, statusExitCode, formatStatus }] = await Promise.all([
    import('../history.js'),
    import('../journal.js'),
    import('../adapters/lock.js'),
    import('../status.js'),
  ]);
  const runInProgress = await isRootLocked(root);
  const statuses = stackStatuses(listStackNames(root), readHistory(root), createJournal(root, '').pending(), runInProgress);
  if (options.json) process.stdout.write(`${JSON.stringify({ run_in_progress: runInProgress, stacks: statuses }, null, 2)}\n`);
  else process.stdout.write(formatStatus(statuses, runInProgress));
  return statusExitCode(statuses);
}
