/**
 * Signals in the commands other than a run, for real: SIGTERM to `recover` while it runs a slow
 * hook ends the hook's process group, leaves the undo in the journal, and exits 143.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { asUser, cli, jobStarted, resetRoot, resetWorld, root, standin, startCli, unitState, waitUntil, writeStack } from './world.js';

const journal = path.join(root, 'logs', 'journal.json');
const pendingUndos = () =>
  existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as { entries: Array<{ undo: { kind: string } }> }).entries.map((entry) => entry.undo.kind) : [];
/** A hook command no other test runs, so its process can be found. */
const slowHook = 'sleep 47.25';
const hookAlive = async () => (await asUser(['pgrep', '-f', slowHook])).code === 0;

describe('signals in recover', () => {
  beforeAll(async () => {
    resetRoot();
    await resetWorld();
  });

  it('SIGTERM while recover runs a slow post_start hook: exit 143, the hook gone, the undo still in the journal', async () => {
    writeStack('composeapp', `duplicati_jobs: [composeapp]\nhooks:\n  pre_stop: "true"\n  post_start: "${slowHook}"\n`);
    await standin('set', 'duration', '4');
    const run = startCli(['composeapp']);
    await waitUntil('the composeapp job to start', () => jobStarted('composeapp'), 60_000);
    run.child.kill('SIGKILL');
    await run.finished;
    expect(pendingUndos()).toEqual(['hooks', 'restore-unit']);
    await standin('wait-idle', '30');

    const recover = startCli(['recover']);
    await waitUntil('the post_start hook to run', hookAlive, 60_000);
    // The unit was started first (the last change is undone first).
    expect(await unitState('composeapp-stack.service')).toBe('active');
    recover.child.kill('SIGTERM');
    const result = await recover.finished;
    expect(result.code).toBe(143);
    expect(result.stderr).toContain('SIGTERM received');
    expect(result.stdout).toContain('NOT RECOVERED: composeapp: post_start hooks');
    expect(await hookAlive()).toBe(false);
    expect(pendingUndos()).toEqual(['hooks']);
    resetRoot();
  });
});
