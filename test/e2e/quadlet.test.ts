/**
 * Quadlet stacks (issue 29), made by the real Quadlet generator (Podman 5.4.2's, test/world):
 * quadpod, a `.pod` with two `.container` members (unit quadpod-pod.service), and quadgroup, a
 * `.target` grouping two `.container` units. Their stack files set no label: the containers are
 * found by Quadlet's own PODMAN_SYSTEMD_UNIT label of the unit and of the units that stop with it.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { asUser, cli, jobRecords, jobStarted, logLines, resetRoot, resetWorld, root, standin, startCli, unitState, waitUntil, world, writeStack } from './world.js';

const stacks = {
  quadpod: { unit: 'quadpod-pod.service', members: ['quadpod-web.service', 'quadpod-worker.service'] },
  quadgroup: { unit: 'quadgroup.target', members: ['quadgroup-web.service', 'quadgroup-worker.service'] },
} as const;
type Stack = keyof typeof stacks;
const data = (stack: Stack) => path.join(world.WORLD_DIR!, 'data', stack);

/** The stack file as a user writes it for a Quadlet stack: the unit, the job, no label. */
const writeQuadletStack = (stack: Stack, extra = '') => writeStack(stack, `unit: ${stacks[stack].unit}\nduplicati_jobs: [${stack}]\n${extra}`);

/** Names of the stack's running containers (Quadlet names them systemd-<unit>). */
async function runningContainers(stack: Stack): Promise<string[]> {
  const result = await asUser(['podman', 'ps', '--format', '{{.Names}}']);
  return result.stdout.split('\n').filter((name) => name.startsWith(`systemd-${stack}-`)).sort();
}

async function unitsOf(stack: Stack): Promise<string[]> {
  return Promise.all([stacks[stack].unit, ...stacks[stack].members].map(async (unit) => `${unit} ${await unitState(unit)}`));
}
const allActive = (stack: Stack) => [stacks[stack].unit, ...stacks[stack].members].map((unit) => `${unit} active`);

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

describe('a Quadlet stack, found by its units with no label set', () => {
  for (const stack of Object.keys(stacks) as Stack[]) {
    it(`${stack} (${stacks[stack].unit}): backed up CLEAN with every container stopped, and brought back as it was`, async () => {
      expect(await runningContainers(stack)).toEqual([`systemd-${stack}-web`, `systemd-${stack}-worker`]);
      writeQuadletStack(stack);
      const result = await cli([stack]);
      expect(result.code, result.stderr).toBe(0);
      // The stand-in saw no container write while the job ran.
      expect(jobRecords()).toMatchObject([{ name: stack, verdict: 'CLEAN' }]);
      const lines = logLines(stack);
      // The containers were found by Quadlet's label of the unit and of each member unit.
      const wait = lines.find((line) => line.step === 'wait for containers to exit' && line.event === 'start');
      for (const unit of [stacks[stack].unit, ...stacks[stack].members]) expect(String(wait?.selector)).toContain(`PODMAN_SYSTEMD_UNIT=${unit}`);
      expect(lines.find((line) => line.step === 'wait for containers to exit' && line.event === 'end')).toMatchObject({ outcome: 'done' });
      expect(await unitsOf(stack)).toEqual(allActive(stack));
      expect(await runningContainers(stack)).toEqual([`systemd-${stack}-web`, `systemd-${stack}-worker`]);
    });
  }

  for (const stack of Object.keys(stacks) as Stack[]) {
    it(`${stack}: a selector that matches nothing while the stack runs is refused: exit 1, the unit and the selector named, nothing touched`, async () => {
      // A typo in a hand-set label: without the check, the wait would find no container and end
      // at once, and the job would read data the stack still writes.
      writeQuadletStack(stack, `container_label: PODMAN_SYSTEMD_UNIT=${stack}-wbe.service\n`);
      const result = await cli([stack]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`unit ${stacks[stack].unit} is active but no container matches PODMAN_SYSTEMD_UNIT=${stack}-wbe.service`);
      expect(result.stderr).toContain('nothing was touched');
      expect(logLines(stack).some((line) => line.step === 'stop unit')).toBe(false);
      expect(jobRecords()).toEqual([]);
      expect(await unitsOf(stack)).toEqual(allActive(stack));
    });
  }

  for (const stack of Object.keys(stacks) as Stack[]) {
    it(`${stack}: SIGKILL mid-job, then recover starts the ${stacks[stack].unit.endsWith('.target') ? 'target' : 'pod'} and its members again`, async () => {
      await standin('set', 'duration', '6');
      writeQuadletStack(stack);
      const run = startCli([stack]);
      await waitUntil(`the ${stack} job to start`, () => jobStarted(stack), 120_000);
      expect(await unitState(stacks[stack].unit)).toBe('inactive');
      expect(await runningContainers(stack)).toEqual([]);
      run.child.kill('SIGKILL');
      await run.finished;
      await standin('wait-idle', '30');
      const recover = await cli(['recover']);
      expect(recover.code, recover.stderr).toBe(0);
      expect(recover.stderr).toContain('ended before restoring the stack: restore unit');
      expect(await unitsOf(stack)).toEqual(allActive(stack));
      expect(await runningContainers(stack)).toEqual([`systemd-${stack}-web`, `systemd-${stack}-worker`]);
    });
  }
});

describe('restore of a Quadlet stack', () => {
  const file = (stack: Stack) => path.join(data(stack), 'note.txt');
  afterEach(async () => {
    for (const stack of Object.keys(stacks) as Stack[]) {
      rmSync(file(stack), { force: true });
      // The replaced data kept beside the stack's folder, removed as the user would.
      await cli(['restore', '--prune', stack, '--yes']);
    }
  });

  for (const stack of Object.keys(stacks) as Stack[]) {
    it(`${stack}: restored to the older version with the ${stacks[stack].unit.endsWith('.target') ? 'target' : 'pod'} stopped and started as one`, async () => {
      writeQuadletStack(stack);
      const write = (text: string) => {
        writeFileSync(file(stack), text);
        chownSync(file(stack), Number(world.WORLD_UID), Number(world.WORLD_GID));
      };
      write('first\n');
      expect((await cli([stack])).code).toBe(0);
      write('second\n');
      expect((await cli([stack])).code).toBe(0);
      const restored = await cli(['restore', stack, '--version', '1', '--yes']);
      expect(restored.code, restored.stderr).toBe(0);
      expect(readFileSync(file(stack), 'utf8')).toBe('first\n');
      const logs = readdirSync(path.join(root, 'logs')).filter((name) => name.startsWith(`restore-${stack}-`) && name.endsWith('.log'));
      const lines = logs.flatMap((name) => readFileSync(path.join(root, 'logs', name), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>));
      expect(lines.some((line) => line.step === 'stop unit' && line.unit === stacks[stack].unit)).toBe(true);
      // Started as one: the unit and its members in one call, each up when the restore ends.
      expect(await unitsOf(stack)).toEqual(allActive(stack));
      expect(await runningContainers(stack)).toEqual([`systemd-${stack}-web`, `systemd-${stack}-worker`]);
      expect(existsSync(data(stack))).toBe(true);
    });
  }
});
