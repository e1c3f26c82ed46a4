import { describe, expect, it } from 'vitest';
import { runStack, stackConfig, worldWithStack } from '../fakes.js';

describe('one stack, happy path', () => {
  it('stops the unit, waits for the containers, runs the job on the stopped stack, starts the unit again', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world);
    expect(result.ok).toBe(true);
    expect(world.state('app-stack.service')).toBe('active');
    const tasks = world.duplicati.completed('1');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.sawLiveStack).toBe(false);
    expect(world.actions.filter((action) => !action.startsWith('duplicati status'))).toEqual([
      'stop app-stack.service',
      'duplicati run app',
      'start app-stack.service',
    ]);
    expect(result.downtimeMs).toBeGreaterThanOrEqual(5000);
    expect(result.backupMs).toBeGreaterThanOrEqual(5000);
  });
});
