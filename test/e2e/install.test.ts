/** `stack-backup install` for real: the user units land in ~/.config/systemd/user and work. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { asUser, cli, jobRecords, resetRoot, resetWorld, root, systemctl, unitState, world } from './world.js';

const unitDir = path.join(world.WORLD_HOME!, '.config', 'systemd', 'user');

async function uninstall(): Promise<void> {
  await systemctl('disable', '--now', 'stack-backup.timer');
  rmSync(path.join(unitDir, 'stack-backup.service'), { force: true });
  rmSync(path.join(unitDir, 'stack-backup.timer'), { force: true });
  await systemctl('daemon-reload');
}

describe('stack-backup install', () => {
  beforeAll(async () => {
    resetRoot();
    await resetWorld();
    await uninstall();
  });
  afterAll(uninstall);

  it('--dry-run prints both units with this installation\'s paths and writes nothing', async () => {
    const result = await cli(['install', '--dry-run']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`ExecStart="${process.execPath}" "${world.WORLD_CLI}" --root "${root}" all`);
    expect(result.stdout).toContain('TimeoutStartSec=infinity');
    expect(result.stdout).toContain('Persistent=true');
    expect(existsSync(path.join(unitDir, 'stack-backup.service'))).toBe(false);
  });

  it('installs and enables the timer; starting the service backs up every stack CLEAN', async () => {
    const result = await cli(['install']);
    expect(result.code).toBe(0);
    expect(readFileSync(path.join(unitDir, 'stack-backup.service'), 'utf8')).toContain(`--root "${root}" all`);
    const timers = await asUser(['systemctl', '--user', 'list-timers', '--all', 'stack-backup.timer']);
    expect(timers.stdout).toContain('stack-backup.timer');
    expect(await systemctl('is-enabled', 'stack-backup.timer').then((finished) => finished.stdout.trim())).toBe('enabled');
    const start = await systemctl('start', 'stack-backup.service');
    expect(start.code).toBe(0);
    expect(jobRecords().map((record) => `${record.name} ${record.verdict}`)).toEqual(['composeapp CLEAN', 'ondemand CLEAN', 'plainapp CLEAN']);
    expect(await unitState('stack-backup.service')).toBe('inactive');
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });
});
