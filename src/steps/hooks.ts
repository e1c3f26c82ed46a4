/** Runs the hook commands of one phase, in order; the first failure ends the phase. */
import { HookFailure, throwIfAborted } from '../errors.js';
import type { HookPhase } from '../config/schema.js';
import type { StackRun } from './context.js';

export async function runHookPhase(run: StackRun, phase: HookPhase, signal: AbortSignal = run.signal): Promise<void> {
  const commands = run.stack.hooks[phase];
  if (commands.length === 0) return;
  const environment = {
    STACK_NAME: run.stack.name,
    STACK_UNIT: run.stack.unit,
    STACK_PHASE: phase,
    STACK_BACKUP_ROOT: run.global.root,
  };
  for (const command of commands) {
    throwIfAborted(signal);
    const step = run.log.step(`${phase} hook`, { command });
    const result = await run.adapters.runHook({
      command,
      environment,
      cwd: run.global.root,
      timeoutMs: run.stack.hookTimeoutMs,
      signal,
    });
    if (result.output.trim() !== '') run.log.info(`${phase} hook output`, { command, output: result.output });
    if (result.timedOut || result.exitCode !== 0) {
      const error = result.timedOut
        ? new HookFailure(`${phase} hook "${command}" ran longer than ${Math.round(run.stack.hookTimeoutMs / 1000)} s and was killed`, result.output)
        : new HookFailure(`${phase} hook "${command}" failed with exit ${result.exitCode ?? 'signal'}`, result.output);
      step.failed(error);
      throw error;
    }
    step.done({ exit_code: 0 });
  }
}

/** Before pre_stop changes anything, its undo is registered: the post_start hooks (e.g. maintenance mode off). */
export async function preStopHooks(run: StackRun): Promise<void> {
  if (run.stack.hooks.pre_stop.length === 0 && run.stack.hooks.post_start.length === 0) return;
  run.undo.push({
    name: 'post_start hooks',
    timeoutMs: run.stack.hookTimeoutMs * Math.max(1, run.stack.hooks.post_start.length) + 5000,
    run: (signal) => runHookPhase(run, 'post_start', signal),
  });
  await runHookPhase(run, 'pre_stop');
}
