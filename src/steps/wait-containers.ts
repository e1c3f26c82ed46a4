/**
 * Waits until none of the stack's containers runs. A unit can report inactive while a
 * container is still shutting down; a backup taken then would copy a live stack. The waiter
 * reacts to the engine's events and lists again on each; a slow re-list covers a missed event.
 */
import { withTimeout } from '../adapters/clock.js';
import type { ContainerEvent } from '../adapters/podman.js';
import { knownStates, type ContainerSummary } from '../adapters/podman-list.js';
import { TimeoutError, throwIfAborted } from '../errors.js';
import type { StackRun } from './context.js';
import { stackContainers } from './stack-containers.js';
import { describeSelection } from '../adapters/podman-list.js';
import type { ContainerSelection } from '../config/types.js';

const relistMs = 1000;
const subscribeTimeoutMs = 5000;

/**
 * Podman's actions for a container whose main process has exited (`died`; `die` in Docker's
 * words). Its main process is its PID 1 (catatonit with `--init`): once it exits, the kernel ends
 * the rest of the container's PID namespace, so nothing in it runs on. Podman's list says so only
 * after its cleanup (`podman container cleanup`, a process of its own, holding the container's
 * lock), a tenth of a second or more later, which the downtime need not wait for.
 */
const exitActions = new Set(['died', 'die']);

/** Subscribes to the engine's events, bounded: an API that does not answer must not hang the run. */
async function subscribe(run: StackRun, selection: ContainerSelection, onChange: (event?: ContainerEvent) => void): Promise<() => void> {
  const pending = run.adapters.engine.watch(selection, onChange);
  try {
    // watch takes no signal: the deadline ends the wait for it, not the call.
    return await withTimeout(run.adapters.clock, subscribeTimeoutMs, () => new TimeoutError(`no answer within ${subscribeTimeoutMs / 1000} s`), () => pending);
  } catch (error) {
    // A subscription that arrives after all is closed at once.
    pending.then((unwatch) => unwatch(), () => {});
    throw error;
  }
}

export async function waitForContainers(run: StackRun): Promise<void> {
  const { stack, adapters } = run;
  const { engine, clock } = adapters;
  // Read before the stop by the preflight; read here when the wait comes first (recover).
  let selection: ContainerSelection;
  try {
    ({ selection } = await stackContainers(run));
  } catch (error) {
    run.log.step('wait for containers to exit', { unit: stack.unit }).failed(error as Error);
    throw error;
  }
  const step = run.log.step('wait for containers to exit', { selector: describeSelection(selection) });
  const deadline = clock.now() + stack.stopTimeoutMs;
  let wake: () => void = () => {};
  let changed = false;
  /** Containers whose `died` event came: stopped, whatever the list still says. */
  const died = new Set<string>();
  const onChange = (event?: ContainerEvent) => {
    if (event && exitActions.has(event.action)) died.add(event.id);
    else if (event?.action === 'start') died.delete(event.id);
    changed = true;
    wake();
  };
  let unwatch: (() => void) | undefined;
  try {
    try {
      unwatch = await subscribe(run, selection, onChange);
    } catch (error) {
      run.log.warn('cannot follow container events; listing containers instead', { error: (error as Error).message });
    }
    let running: ContainerSummary[] = [];
    const named = new Set<string>();
    for (;;) {
      throwIfAborted(run.signal);
      changed = false;
      const containers = await engine.containers(selection, run.signal);
      for (const container of containers) {
        // A state this code does not know, or one Podman keeps after the processes are gone
        // ("removing"), is named once, so a stack that waits or does not wait says why.
        const odd = !knownStates.has(container.state) || (container.state === 'running') !== container.running;
        const key = `${container.name} ${container.state} ${container.running}`;
        if (odd && !named.has(key)) {
          named.add(key);
          run.log.warn(
            container.running
              ? `container ${container.name} is in Podman state "${container.state}" and its processes still run; waiting for them`
              : `container ${container.name} is in Podman state "${container.state}" but runs no process; counted as stopped`,
            { container: container.name, state: container.state },
          );
        }
      }
      running = containers.filter((container) => container.running && !died.has(container.id));
      if (running.length === 0) break;
      const remaining = deadline - clock.now();
      if (remaining <= 0) {
        throw new TimeoutError(
          `containers still running ${Math.round(stack.stopTimeoutMs / 1000)} s after the stop: ${running.map((container) => `${container.name} (${container.state})`).join(', ')}`,
        );
      }
      // The last ones running have died since the list was made: down, with no list of its own.
      if (running.every((container) => died.has(container.id))) break;
      if (changed) continue;
      const pause = new AbortController();
      const abortPause = () => pause.abort();
      run.signal.addEventListener('abort', abortPause, { once: true });
      wake = () => pause.abort();
      await clock.sleep(Math.min(unwatch ? relistMs : 250, remaining), pause.signal).catch(() => {});
      run.signal.removeEventListener('abort', abortPause);
      if (running.every((container) => died.has(container.id))) break;
    }
  } catch (error) {
    step.failed(error as Error);
    throw error;
  } finally {
    unwatch?.();
  }
  run.timings.containersGoneAt = clock.now();
  step.done();
}
