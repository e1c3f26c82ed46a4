/** Runs the hook commands of one phase, in order; the first failure ends the phase. */
import type { HookRunner } from '../adapters/hooks.js';
import type { HookPhase } from '../config/schema.js';
import type { GlobalConfig, StackConfig } from '../config/types.js';
import { HookFailure, throwIfAborted } from '../errors.js';
import type { HookCommands } from '../journal/journal.js';
import type { StackLog } from '../report/logging.js';
import type { StackRun } from './context.js';

/** A phase's commands with everything they need, also to run again from the crash journal. */
export function hookCommandsOf(stack: StackConfig, global: GlobalConfig, phase: HookPhase): HookCommands {
  return {
    phase,
    commands: stack.hooks[phase],
    environment: {
      STACK_NAME: stack.name,
      STACK_UNIT: stack.unit,
      STACK_PHASE: phase,
      STACK_BACKUP_ROOT: global.root,
    },
    cwd: global.root,
    timeoutMs: stack.hookTimeoutMs,
  };
}

export function hookCommands(run: StackRun, phase: HookPhase): HookCommands {
  return hookCommandsOf(run.stack, run.global, phase);
}

export async function runHookCommands(hooks: HookCommands, log: StackLog, runHook: HookRunner, signal: AbortSignal): Promise<void> {
  const { phase } = hooks;
  for (const command of hooks.commands) {
    throwIfAborted(signal);
    const step = log.step(`${phase} hook`, { command });
    const result = await runHook({ command, environment: hooks.environment, cwd: hooks.cwd, timeoutMs: hooks.timeoutMs, signal });
    if (result.output.trim() !== '') log.info(`${phase} hook output`, { command, output: result.output });
    if (result.timedOut || result.exitCode !== 0) {
      const error = result.timedOut
        ? new HookFailure(`${phase} hook "${command}" ran longer than ${Math.round(hooks.timeoutMs / 1000)} s and was killed`, result.output)
        : new HookFailure(`${phase} hook "${command}" failed with exit ${result.exitCode ?? 'signal'}`, result.output);
      step.failed(error);
      throw error;
    }
    step.done({ exit_code: 0 });
  }
}

export async function runHookPhase(run: StackRun, phase: HookPhase, signal: AbortSignal = run.signal): Promise<void> {
  await runHookCommands(hookCommands(run, phase), run.log, run.adapters.runHook, signal);
}

/** Before pre_stop changes anything, its undo is registered: the post_start hooks (e.g. maintenance mode off). */
export async function preStopHooks(run: StackRun): Promise<void> {
  if (run.stack.hooks.pre_stop.length === 0 && run.stack.hooks.post_start.length === 0) return;
  run.undo.push(run.stack.name, { kind: 'hooks', hooks: hookCommands(run, 'post_start') });
  await runHookPhase(run, 'pre_stop');
}
