/**
 * The names of a run's JSON document: "restore" is a data restore only, so a stack the run could
 * not start again is `left_down` and the failed undos are `undo_errors`; the old names
 * (`restored`, `restore_errors`) stay beside them for one release, saying the same.
 */
import { describe, expect, it } from 'vitest';
import { runJson } from '../../src/commands/backup.js';
import { runStack, worldWithStack } from '../fakes.js';

describe('backup --json: the new names and their old aliases', () => {
  it('a stack left down: left_down true and restored false; undo_errors and restore_errors the same list', async () => {
    const world = worldWithStack('active');
    world.failing.add('start app-stack.service');
    const { result } = await runStack(world);
    const document = runJson('/root', { recovery: { restored: [], failed: [] }, results: [result], skipped: ['beta'] }, new Date(0), new Date(1), 1);
    const [app, beta] = document.stacks as Array<Record<string, unknown>>;
    expect(app).toMatchObject({ stack: 'app', left_down: true, restored: false });
    expect(app!.undo_errors).toEqual([expect.stringMatching(/^restore unit: start app-stack.service: failed/)]);
    expect(app!.restore_errors).toEqual(app!.undo_errors);
    expect(beta).toMatchObject({ stack: 'beta', result: 'not_run', left_down: false, restored: true, undo_errors: [], restore_errors: [] });
  });

  it('a stack started again: left_down false, restored true, no undo errors', async () => {
    const { result } = await runStack(worldWithStack('active'));
    const [app] = runJson('/root', { recovery: { restored: [], failed: [] }, results: [result], skipped: [] }, new Date(0), new Date(1), 0).stacks as Array<Record<string, unknown>>;
    expect(app).toMatchObject({ left_down: false, restored: true, undo_errors: [], restore_errors: [] });
  });
});
