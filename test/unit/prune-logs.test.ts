/**
 * src/adapters/files.ts pruneLogs: dated stack logs older than log_retention_days are deleted,
 * whole days kept, everything else in logs/ left alone; and runBackups prunes after its run.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pruneLogs } from '../../src/adapters/files.js';
import { localDate } from '../../src/report/logging.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { globalConfig, removeTempRoots, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

/** Noon, local time, on 30 June 2024: far from any change to or from summer time. */
const now = new Date(2024, 5, 30, 12, 0, 0).getTime();

function logsFolder(names: string[]): string {
  const folder = path.join(tempRoot(), 'logs');
  mkdirSync(folder, { recursive: true });
  for (const name of names) writeFileSync(path.join(folder, name), 'x\n');
  return folder;
}

describe('pruneLogs', () => {
  it('deletes dated stack logs older than the retention and keeps the rest of the folder', async () => {
    const others = [
      'journal.json',
      'history.json',
      'stack-backup.lock',
      'backup-app.log',
      'backup-app-2024-01-01.log.gz',
      'notes-2020-01-01.log',
      'backup-app-2020-01-01.txt',
    ];
    const folder = logsFolder([
      ...others,
      'backup-app-2024-06-30.log',
      'backup-app-2024-05-31.log',
      'backup-app-2024-05-30.log',
      'backup-my-app-2023-12-31.log',
      'backup-app-2020-01-01.log',
    ]);
    const removed = await pruneLogs(folder, 30, now);
    expect(removed.sort()).toEqual(['backup-app-2020-01-01.log', 'backup-app-2024-05-30.log', 'backup-my-app-2023-12-31.log']);
    expect(readdirSync(folder).sort()).toEqual([...others, 'backup-app-2024-05-31.log', 'backup-app-2024-06-30.log'].sort());
  });

  it('keeps whole days: with 1 day, yesterday\'s log stays and the day before goes', async () => {
    const folder = logsFolder(['backup-app-2024-06-30.log', 'backup-app-2024-06-29.log', 'backup-app-2024-06-28.log']);
    expect(await pruneLogs(folder, 1, now)).toEqual(['backup-app-2024-06-28.log']);
    expect(readdirSync(folder).sort()).toEqual(['backup-app-2024-06-29.log', 'backup-app-2024-06-30.log']);
  });

  it('a longer retention keeps more', async () => {
    const folder = logsFolder(['backup-app-2024-05-30.log', 'backup-app-2024-01-02.log']);
    expect(await pruneLogs(folder, 365, now)).toEqual([]);
    expect(readdirSync(folder)).toHaveLength(2);
  });

  it('a missing logs folder is nothing to prune', async () => {
    expect(await pruneLogs(path.join(tempRoot(), 'logs'), 30, now)).toEqual([]);
  });
});

describe('runBackups prunes old logs', () => {
  it('after the run, logs older than log_retention_days are gone; today\'s log and the state files stay', async () => {
    const root = tempRoot();
    const world = worldWithStack('active');
    const today = world.clock.now();
    const old = `backup-app-${localDate(today - 40 * 86_400_000)}.log`;
    const recent = `backup-app-${localDate(today - 10 * 86_400_000)}.log`;
    const otherStack = `backup-gone-${localDate(today - 40 * 86_400_000)}.log`;
    mkdirSync(path.join(root, 'logs'));
    for (const name of [old, recent, otherStack]) writeFileSync(path.join(root, 'logs', name), '{}\n');
    const report = await runBackups({
      global: globalConfig({ root, logRetentionDays: 30 }),
      stacks: [stackConfig()],
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    });
    expect(report.results[0]!.ok).toBe(true);
    const left = readdirSync(path.join(root, 'logs'));
    expect(left).not.toContain(old);
    expect(left).not.toContain(otherStack);
    expect(left).toContain(recent);
    expect(existsSync(report.results[0]!.logFile)).toBe(true);
    expect(left).toEqual(expect.arrayContaining(['journal.json', 'history.json']));
  });

  it('a retention of 7 days removes the 10-day-old log too', async () => {
    const root = tempRoot();
    const world = worldWithStack('active');
    const recent = `backup-app-${localDate(world.clock.now() - 10 * 86_400_000)}.log`;
    mkdirSync(path.join(root, 'logs'));
    writeFileSync(path.join(root, 'logs', recent), '{}\n');
    await runBackups({
      global: globalConfig({ root, logRetentionDays: 7 }),
      stacks: [stackConfig()],
      adapters: world.adapters(),
      progress: createProgress({ write: () => {} }, world.clock),
      output: { write: () => {} },
      signal: new AbortController().signal,
    });
    expect(readdirSync(path.join(root, 'logs'))).not.toContain(recent);
  });
});
