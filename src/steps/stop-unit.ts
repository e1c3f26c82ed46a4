/**
 * Records whether the stack's unit is up, registers the restore that follows restore_policy,
 * then stops the unit. The restore is the undo: the same code brings the stack back after a
 * good backup and after any failure.
 */
import { isUp } from '../adapters/systemd.js';
import { hookCommands } from './hooks.js';
import type { StackRun } from './context.js';
import { watchDuplicatiDuringStop } from './stop-watch.js';
import { stackContainers } from './stack-containers.js';

/**
 * `watchDuplicati` (stop mode): Duplicati is looked at while the unit stops, so that the check
 * that it holds no task begun before the stop, and the job's record, cost no downtime.
 */
export async function stopUnit(run: StackRun, options: { watchDuplicati?: boolean } = {}): Promise<void> {
  const { stack, adapters, timings } = run;
  const step = run.log.step('stop unit', { unit: stack.unit });
  try {
    const state = await adapters.systemd.state(stack.unit, run.signal);
    const wasActive = isUp(state);
    timings.unitWasActive = wasActive;
    const startAgain = stack.restorePolicy === 'always' || wasActive;
    // A pod's members and a target's parts that were up: started again with it, and waited for.
    const { graph } = await stackContainers(run);
    const members = graph.filter((entry) => entry.unit !== stack.unit && isUp({ load: 'loaded', active: entry.activeState })).map((entry) => entry.unit);
    run.log.info('unit state before stop', { unit: stack.unit, state: state.active, restore_policy: stack.restorePolicy, start_again: startAgain });
    run.undo.push(stack.name, {
      kind: 'restore-unit',
      unit: stack.unit,
      stateBefore: state.active,
      start: startAgain,
      startTimeoutMs: stack.startTimeoutMs,
      preStart: hookCommands(run, 'pre_start'),
      ...(members.length > 0 ? { members } : {}),
    });
    timings.unitStopIssuedAt = adapters.clock.now();
    if (options.watchDuplicati) run.stopWatch = watchDuplicatiDuringStop(run);
    await adapters.systemd.stop(stack.unit, stack.stopTimeoutMs, run.signal);
    timings.unitStoppedAt = adapters.clock.now();
  } catch (error) {
    run.stopWatch?.stop();
    step.failed(error as Error);
    throw error;
  }
  step.done({ was_active: timings.unitWasActive });
}
