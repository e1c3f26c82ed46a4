/**
 * Records whether the stack's unit is up, registers the restore that follows restore_policy,
 * then stops the unit. The restore is the undo: the same code brings the stack back after a
 * good backup and after any failure.
 */
import { isUp } from '../adapters/systemd.js';
import { runHookPhase } from './hooks.js';
import type { StackRun } from './context.js';

export async function stopUnit(run: StackRun): Promise<void> {
  const { stack, adapters, timings } = run;
  const step = run.log.step('stop unit', { unit: stack.unit });
  try {
    const state = await adapters.systemd.state(stack.unit, run.signal);
    const wasActive = isUp(state);
    timings.unitWasActive = wasActive;
    const startAgain = stack.restorePolicy === 'always' || wasActive;
    run.log.info('unit state before stop', { unit: stack.unit, state: state.active, restore_policy: stack.restorePolicy, start_again: startAgain });
    run.undo.push({
      name: 'restore unit',
      timeoutMs: stack.startTimeoutMs + stack.hookTimeoutMs * stack.hooks.pre_start.length + 5000,
      run: async (signal) => {
        // A failing pre_start hook fails the stack but must not keep it down: start it anyway.
        const hookFailure = await runHookPhase(run, 'pre_start', signal).then(
          () => undefined,
          (error: Error) => error,
        );
        if (!startAgain) {
          run.log.info('unit left stopped', { unit: stack.unit, reason: `restore_policy ${stack.restorePolicy} and it was ${state.active}` });
        } else {
          const startStep = run.log.step('start unit', { unit: stack.unit });
          try {
            timings.unitStartIssuedAt = adapters.clock.now();
            await adapters.systemd.start(stack.unit, stack.startTimeoutMs, signal);
          } catch (error) {
            startStep.failed(error as Error);
            throw hookFailure ? new Error(`${hookFailure.message}; ${(error as Error).message}`) : error;
          }
          timings.unitStartedAt = adapters.clock.now();
          startStep.done();
        }
        if (hookFailure) throw hookFailure;
      },
    });
    timings.unitStopIssuedAt = adapters.clock.now();
    await adapters.systemd.stop(stack.unit, stack.stopTimeoutMs, run.signal);
    timings.unitStoppedAt = adapters.clock.now();
  } catch (error) {
    step.failed(error as Error);
    throw error;
  }
  step.done({ was_active: timings.unitWasActive });
}
