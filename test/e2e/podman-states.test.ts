/**
 * Containers in Podman states that are neither "running" nor "exited" (issue 9): a container
 * whose removal was cut short stays listed as "removing" with no process, and a stop that lands
 * while an on-demand stack is still activating provokes exactly that on real hosts. The stack
 * must count such a container as stopped, say so in its log, and be backed up CLEAN at once.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { asUser, cli, jobRecords, logLines, resetRoot, resetWorld, standin, systemctl, unitState, waitUntil, world, worldScript, writeStack } from './world.js';

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

/** Podman 4.3's `ps` state column: "up ..." for a running container, else its state word. */
async function containerState(name: string): Promise<string> {
  const result = await asUser(['podman', 'ps', '--all', '--filter', `name=^${name}$`, '--format', '{{.State}}']);
  const state = result.stdout.trim().toLowerCase();
  return state.startsWith('up ') ? 'running' : state;
}

/** True once the unit's start is held by the delay command: its shell has a `sleep` child. */
async function activationHeld(): Promise<boolean> {
  const controlPid = (await systemctl('show', '--property=ControlPID', '--value', 'ondemand-stack.service')).stdout.trim();
  if (!/^[1-9]\d*$/.test(controlPid)) return false;
  try {
    const command = readFileSync(`/proc/${controlPid}/cmdline`, 'utf8');
    if (!command.includes('ondemand-activation-delay')) return false;
    const children = readFileSync(`/proc/${controlPid}/task/${controlPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return children.some((child) => readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'sleep');
  } catch {
    return false;
  }
}

describe('the world scripts the tests build on', () => {
  it('a world script that dies says why in the test output: its exit and its own message', async () => {
    // No arguments: the script stops at its first required one, before it touches anything.
    await expect(worldScript('stuck-container.sh')).rejects.toThrow(/world script stuck-container\.sh\s+failed \(exit 1\)\nstderr:\n.*name/);
    await expect(worldScript('standin.sh', 'no-such-verb')).rejects.toThrow(/failed \(exit 2\)\nstdout \(end\):\n[\s\S]*standin\.sh util ARGS/);
  });
});

describe('containers Podman still lists after their processes are gone', () => {
  it('a container stuck in "removing" does not hold the stack down: backed up CLEAN, the log names the state', async () => {
    await worldScript('stuck-container.sh', 'plainapp-leftover', 'plainapp');
    expect(await containerState('plainapp-leftover')).toBe('removing');
    // A short stop_timeout: waiting on the leftover would fail the stack instead of backing it up.
    writeStack('plainapp', 'duplicati_jobs: [plainapp]\nstop_timeout: 20\n');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(0);
    expect(jobRecords()).toMatchObject([{ name: 'plainapp', verdict: 'CLEAN' }]);
    expect(await unitState('plainapp-stack.service')).toBe('active');
    const lines = logLines('plainapp');
    expect(lines.some((line) => line.msg === 'container plainapp-leftover is in Podman state "removing" but runs no process; counted as stopped')).toBe(true);
    expect(lines.find((line) => line.step === 'wait for containers to exit' && line.event === 'end')).toMatchObject({ outcome: 'done' });
    expect(result.stderr).toContain('"removing" but runs no process');
  });

  it('a visitor wakes the stack through its socket just as the stop arrives (unit still activating): backed up CLEAN and brought back', async () => {
    await standin('set', 'duration', '2');
    // Hold the next start in "activating" (container up, start not finished) for a while.
    writeFileSync(path.join(world.WORLD_DIR!, 'ondemand-activation-delay'), '60\n');
    try {
      await systemctl('stop', 'ondemand-stack.service');
      const socket = connect(Number(world.FRONTPORT), '127.0.0.1');
      socket.on('error', () => {});
      await waitUntil('ondemand-stack.service held in activating with its container running', async () =>
        (await unitState('ondemand-stack.service')) === 'activating' && (await containerState('ondemand-app')) === 'running' && (await activationHeld()),
      60_000);
      socket.destroy();
      // The start stack-backup makes afterwards must not be held.
      rmSync(path.join(world.WORLD_DIR!, 'ondemand-activation-delay'), { force: true });
      const result = await cli(['ondemand']);
      expect(result.code).toBe(0);
      expect(jobRecords()).toMatchObject([{ name: 'ondemand', verdict: 'CLEAN' }]);
      const lines = logLines('ondemand');
      expect(lines.find((line) => line.msg === 'unit state before stop')).toMatchObject({ state: 'activating', start_again: true });
      expect(lines.find((line) => line.step === 'wait for containers to exit' && line.event === 'end')).toMatchObject({ outcome: 'done' });
      // It was coming up for a visitor: it is up again, and so is the socket.
      expect(await unitState('ondemand-stack.service')).toBe('active');
      expect(await unitState('ondemand-proxy.socket')).toBe('active');
      expect(await containerState('ondemand-app')).toBe('running');
    } finally {
      rmSync(path.join(world.WORLD_DIR!, 'ondemand-activation-delay'), { force: true });
    }
  });
});
