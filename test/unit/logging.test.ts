/**
 * src/report/logging.ts and the restore path under a failing log or journal: a log file that cannot be
 * written is a warning and an incomplete log, never a stack left down; a journal that cannot be
 * written before a change fails the stack before that change.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { systemClock, type Clock } from '../../src/adapters/clock.js';
import { createStackLog, type LogFileSystem } from '../../src/report/logging.js';
import { backupStack } from '../../src/backup/orchestrator.js';
import { problems } from '../../src/report/report.js';
import { createProgress } from '../../src/report/report.js';
import { UndoStack } from '../../src/journal/undo.js';
import type { Journal } from '../../src/journal/journal.js';
import { globalConfig, removeTempRoots, runStack, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

/** A clock that tells the given time and never sleeps. */
const clockAt = (now: () => number): Clock => ({ now, sleep: async () => {}, timeout: systemClock.timeout });

function noSpace(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
}

/** A file system with room for `room` bytes, then ENOSPC; keeps what was written. */
function smallDisk(room: number): LogFileSystem & { text: () => string; writes: number } {
  let kept = Buffer.alloc(0);
  const disk = {
    writes: 0,
    open: () => 3,
    linked: () => true,
    write: (_descriptor: number, bytes: Uint8Array) => {
      disk.writes += 1;
      const fits = Math.min(bytes.length, room - kept.length);
      if (fits <= 0) throw noSpace();
      kept = Buffer.concat([kept, Buffer.from(bytes.subarray(0, fits))]);
      return fits;
    },
    close: () => {},
    text: () => kept.toString('utf8'),
  };
  return disk;
}

function progressLines() {
  const lines: string[] = [];
  return { lines, progress: createProgress({ write: (text) => lines.push(text) }, clockAt(() => 0)) };
}

describe('the stack log', () => {
  it('writes JSON lines to logs/backup-<stack>-<date>.log', () => {
    const root = tempRoot();
    const { progress } = progressLines();
    const log = createStackLog(root, 'app', 'run-1', clockAt(() => Date.now()), progress);
    log.info('hello', { a: 1 });
    log.close();
    const line = JSON.parse(readFileSync(log.file, 'utf8').trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: 'hello', a: 1, stack: 'app', run: 'run-1' });
    expect(log.incomplete).toBeUndefined();
  });

  it('a full disk: no write throws, one warning on stderr, the log says it is incomplete, nothing more is written', () => {
    const disk = smallDisk(150);
    const { lines, progress } = progressLines();
    const log = createStackLog('/root', 'app', 'run-1', clockAt(() => 0), progress, disk);
    expect(() => {
      for (let index = 0; index < 10; index += 1) {
        log.info(`line ${index}`);
        log.step('stop unit').done();
      }
      log.warn('still going');
      log.close();
    }).not.toThrow();
    expect(log.incomplete).toMatch(/ENOSPC/);
    const warnings = lines.filter((line) => line.includes('cannot write the log'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('this log is incomplete');
    const writesAtFailure = disk.writes;
    log.info('after the failure');
    expect(disk.writes).toBe(writesAtFailure);
  });

  it('a removed folder or a refused permission at open is the same warning, not an exception', () => {
    const { lines, progress } = progressLines();
    const refusing: LogFileSystem = {
      open: () => {
        throw Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' });
      },
      write: () => 0,
      linked: () => true,
      close: () => {},
    };
    const log = createStackLog('/root', 'app', 'run-1', clockAt(() => 0), progress, refusing);
    expect(() => log.error('x')).not.toThrow();
    expect(log.incomplete).toMatch(/EACCES/);
    expect(lines.join('')).toContain('cannot write the log');
  });

  it('for real: a logs/ folder removed while the run writes makes the log incomplete, with a warning', () => {
    const root = tempRoot();
    const { lines, progress } = progressLines();
    const log = createStackLog(root, 'app', 'run-1', clockAt(() => Date.now()), progress);
    log.info('before');
    expect(log.incomplete).toBeUndefined();
    rmSync(path.join(root, 'logs'), { recursive: true, force: true });
    log.info('into a removed file');
    expect(log.incomplete).toMatch(/removed while the run wrote it/);
    expect(lines.join('')).toContain('cannot write the log');
    log.close();
  });
});

describe('a run whose log fills up', () => {
  it('the disk fills while the backup runs: the stack is still restored, the run is not a success, the summary says why', async () => {
    const world = worldWithStack('active');
    world.unit('app-proxy.socket', 'active');
    const disk = smallDisk(10_000);
    const { lines, progress } = progressLines();
    const log = createStackLog('/root', 'app', 'run-1', world.clock, progress, disk);
    world.onAction = (action) => {
      // From the job's run on, nothing more fits.
      if (action.startsWith('duplicati run ')) disk.write = () => { throw noSpace(); };
    };
    const result = await backupStack({
      runId: 'run-1',
      stack: stackConfig({ freeze: { socket: 'app-proxy.socket', service: undefined } }),
      global: globalConfig(),
      adapters: world.adapters(),
      log,
      undo: new UndoStack(),
      signal: new AbortController().signal,
      timings: {},
      jobResults: [],
    });
    expect(world.state('app-stack.service')).toBe('active');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(world.actions).toContain('start app-stack.service');
    expect(result.ok).toBe(false);
    expect(result.notRestored).toBe(false);
    expect(result.unrecorded?.join()).toMatch(/the log is incomplete: .*ENOSPC/);
    expect(problems(result).join('; ')).toMatch(/the log is incomplete: .*ENOSPC/);
    expect(lines.join('')).toContain('cannot write the log');
  });
});

describe('a journal that cannot be written', () => {
  const fullJournal = (failFrom: number): Journal & { removed: string[] } => {
    let added = 0;
    const removed: string[] = [];
    return {
      removed,
      update: () => {},
      add: () => {
        added += 1;
        if (added >= failFrom) throw noSpace();
        return `entry-${added}`;
      },
      remove: (id) => {
        removed.push(id);
        throw noSpace();
      },
      pending: () => [],
    };
  };

  it('before the stop: the stack fails with the unit never stopped', async () => {
    const world = worldWithStack('active');
    const { result } = await runStack(world, stackConfig(), { journal: fullJournal(1) });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/cannot write the crash journal .*ENOSPC.*was not made/);
    expect(world.actions.filter((action) => action.startsWith('stop '))).toEqual([]);
    expect(world.state('app-stack.service')).toBe('active');
  });

  it('on the undo path (crossing out fails): a warning, every undo still runs, the run is not a success', async () => {
    const world = worldWithStack('active');
    world.unit('app-proxy.socket', 'active');
    const journal = fullJournal(99);
    const { result, log } = await runStack(world, stackConfig({ freeze: { socket: 'app-proxy.socket', service: undefined } }), { journal });
    expect(result.ok).toBe(false);
    expect(result.restoreErrors).toEqual([]);
    expect(result.unrecorded?.join()).toMatch(/crash journal was not updated .*ENOSPC.*stack-backup recover/);
    expect(journal.removed).toHaveLength(2);
    expect(world.state('app-stack.service')).toBe('active');
    expect(world.state('app-proxy.socket')).toBe('active');
    expect(log.messages('warn').filter((message) => message.includes('cannot update the crash journal'))).toHaveLength(2);
  });
});
