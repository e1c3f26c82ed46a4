/** src/adapters/files.ts: the backup_mount check runs in a child process that a timeout can end. */
import { describe, expect, it } from 'vitest';
import { checkFolder } from '../../src/adapters/files.js';
import { TimeoutError } from '../../src/errors.js';
import type { CommandRunner } from '../../src/adapters/process.js';
import { FakeClock, fakeRunner, tempRoot } from '../fakes.js';

describe('checkFolder', () => {
  it('reads the folder with a child process, bounded by the timeout', async () => {
    const { run, calls } = fakeRunner([{ exitCode: 0 }]);
    await checkFolder('/mnt/backup', 30_000, run);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.argv.at(-1)).toBe('/mnt/backup');
    expect(calls[0]!.argv.at(-2)).toBe('--');
    expect(calls[0]!.options.timeoutMs).toBe(30_000);
  });

  it('a child killed at the timeout is a TimeoutError', async () => {
    const { run } = fakeRunner([{ exitCode: undefined, timedOut: true }]);
    await expect(checkFolder('/mnt/backup', 30_000, run)).rejects.toThrow(new TimeoutError('no answer within 30 s'));
  });

  it("the child's error is the reason", async () => {
    const { run } = fakeRunner([{ exitCode: 1, stderr: 'EACCES: permission denied, opendir' }]);
    await expect(checkFolder('/mnt/backup', 30_000, run)).rejects.toThrow('EACCES: permission denied, opendir');
  });

  it('a child that cannot be ended (stuck in the kernel) is left behind, and the check still fails in bounded time', async () => {
    const clock = new FakeClock();
    const never: CommandRunner = () => new Promise(() => {});
    let outcome: string | undefined;
    void checkFolder('/mnt/backup', 30_000, never, clock).then(
      () => (outcome = 'resolved'),
      (error: Error) => (outcome = error.message),
    );
    clock.advance(33_999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcome).toBeUndefined();
    clock.advance(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcome).toMatch(/no answer within 30 s, and the process reading it could not be ended/);
  });

  it('for real: a readable folder passes, a missing one fails with the reason', async () => {
    await checkFolder(tempRoot(), 30_000);
    await expect(checkFolder('/no/such/folder', 30_000)).rejects.toThrow(/ENOENT/);
  });
});
