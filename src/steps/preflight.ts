/** Checks made before a stack is touched: a failure here fails the stack with nothing changed. */
import { CommandError } from '../errors.js';
import type { StackRun } from './context.js';

const mountTimeoutMs = 30_000;

export async function preflight(run: StackRun): Promise<void> {
  const { backupMount } = run.global;
  if (backupMount === undefined) return;
  const step = run.log.step('check backup_mount', { folder: backupMount });
  try {
    await run.adapters.checkFolder(backupMount, mountTimeoutMs);
  } catch (error) {
    const failure = new CommandError(`backup_mount ${backupMount} is not reachable: ${(error as Error).message}`);
    step.failed(failure);
    throw failure;
  }
  step.done();
}
