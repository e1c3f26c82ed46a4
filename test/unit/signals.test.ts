/**
 * SIGINT/SIGTERM in the commands other than a run (src/commands/signals.ts, src/recover.ts):
 * the work under way is aborted through its AbortSignal (a hook's process group is killed by the
 * runner), what was not done stays in the crash journal, and the exit code is 128+N.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { withSignals } from '../../src/commands/signals.js';
import { AbortedError } from '../../src/errors.js';
import { createJournal, type UndoRecord } from '../../src/journal/journal.js';
import { recoverPending } from '../../src/recover.js';
import { createProgress } from '../../src/report/report.js';
import { undoName } from '../../src/journal/undo-records.js';
import { removeTempRoots, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const hooks = (phase: 'pre_start' | 'post_start', commands: string[]) => ({ phase, commands, environment: { STACK_PHASE: phase }, cwd: '/', timeoutMs: 300_000 });

describe('withSignals', () => {
  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s during the work: the work\'s signal fires, the exit code is %i, the handlers are gone after', async (name, code) => {
    const before = process.listenerCount(name);
    const said: string[] = [];
    const result = await withSignals((text) => said.push(text), 'leaving the journal consistent', async (signal) => {
      expect(process.listenerCount(name)).toBe(before + 1);
      process.emit(name, name);
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(AbortedError);
      throw signal.reason;
    });
    expect(result).toBe(code);
    expect(said).toEqual([`${name} received: ending the step under way and leaving the journal consistent`]);
    expect(process.listenerCount(name)).toBe(before);
  });

  it('no signal: the work\'s own exit code', async () => {
    expect(await withSignals(() => {}, 'x', async () => 1)).toBe(1);
  });
});

describe('recover under a signal', () => {
  it('SIGTERM in a pre_start hook: the hook is aborted, nothing after it runs, the journal keeps every undo not done', async () => {
    const root = tempRoot();
    const journal = createJournal(root, 'dead-run');
    const entries: UndoRecord[] = [
      { kind: 'hooks', hooks: hooks('post_start', ['maintenance off']) },
      { kind: 'restore-unit', unit: 'app-stack.service', stateBefore: 'active', start: true, startTimeoutMs: 120_000, preStart: hooks('pre_start', ['slow fix']) },
    ];
    for (const entry of entries) journal.add('app', entry);
    const world = worldWithStack('inactive');
    const controller = new AbortController();
    let hookSignal: AbortSignal | undefined;
    world.onHook = (hook) => {
      hookSignal = hook.signal;
      controller.abort(new AbortedError('SIGTERM'));
    };
    const report = await recoverPending(root, createJournal(root, 'recovery'), 'recovery', {
      systemd: world.systemd,
      runHook: world.runHook,
      clock: world.clock,
      progress: createProgress({ write: () => {} }, world.clock),
      signal: controller.signal,
    });
    // The hook runner got a signal that fired: the real one kills the hook's process group.
    expect(hookSignal?.aborted).toBe(true);
    // The unit's start is still attempted after a failed pre_start hook (performUndo), but under
    // the fired signal it is aborted at once; post_start is not attempted.
    expect(world.actions).toEqual(['hook pre_start: slow fix', 'start app-stack.service']);
    expect(report.restored).toEqual([]);
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]).toMatch(/^app: restore unit: aborted by SIGTERM/);
    expect(world.state('app-stack.service')).toBe('inactive');
    expect(createJournal(root, 'reader').pending().map((entry) => undoName(entry.undo))).toEqual(['post_start hooks', 'restore unit']);
  });
});
