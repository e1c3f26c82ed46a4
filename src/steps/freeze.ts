/**
 * Freezes on-demand activation: stops the .socket, then its service, so a visitor cannot start
 * the stack mid-backup. The undo brings each back to the state recorded here.
 */
import { isUp } from '../adapters/systemd.js';
import type { StackRun } from './context.js';

const unitTimeoutMs = 60_000;

export async function freezeOnDemand(run: StackRun): Promise<void> {
  const freeze = run.stack.freeze;
  if (!freeze) return;
  const { systemd } = run.adapters;
  const step = run.log.step('freeze on-demand socket', { socket: freeze.socket, service: freeze.service });
  try {
    const socketState = await systemd.state(freeze.socket, run.signal);
    const serviceState = freeze.service ? await systemd.state(freeze.service, run.signal) : undefined;
    run.log.info('on-demand state before freeze', {
      socket: freeze.socket,
      socket_state: socketState.active,
      service: freeze.service,
      service_state: serviceState?.active,
    });
    run.undo.push(run.stack.name, {
      kind: 'unfreeze',
      socket: isUp(socketState) ? freeze.socket : undefined,
      service: serviceState !== undefined && isUp(serviceState) ? freeze.service : undefined,
    });
    await systemd.stop(freeze.socket, unitTimeoutMs, run.signal);
    if (freeze.service) await systemd.stop(freeze.service, unitTimeoutMs, run.signal);
  } catch (error) {
    step.failed(error as Error);
    throw error;
  }
  step.done();
}
