/**
 * `stack-backup install` for real: one timer and service per root land in
 * ~/.config/systemd/user, pass `systemd-analyze verify`, and work; an earlier version's
 * stack-backup.timer is replaced; a run systemd kills is recovered at once by ExecStopPost=.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, chownSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { escapePath } from '../../src/host/install.js';
import {
  asUser,
  cli,
  jobRecords,
  jobStarted,
  resetRoot,
  resetWorld,
  root,
  standin,
  systemctl,
  unitState,
  waitUntil,
  world,
  writeUserFile,
} from './world.js';

const unitDir = path.join(world.WORLD_HOME!, '.config', 'systemd', 'user');
const instance = `stack-backup@${escapePath(root)}`;
const service = `${instance}.service`;
const timer = `${instance}.timer`;
/** A second root of the same user, with no stacks: its timer must not replace the first's. */
const secondRoot = path.join(path.dirname(root), 'second-root');

/** Every stack-backup unit file of the user, and the units themselves, gone. */
async function removeAllUnits(): Promise<void> {
  mkdirSync(unitDir, { recursive: true });
  for (const entry of readdirSync(unitDir).filter((name) => name.startsWith('stack-backup'))) {
    if (entry.endsWith('.timer')) await systemctl('disable', '--now', entry);
    rmSync(path.join(unitDir, entry), { force: true });
  }
  await systemctl('daemon-reload');
}

describe('stack-backup install', () => {
  beforeAll(async () => {
    resetRoot();
    await resetWorld();
    await removeAllUnits();
    mkdirSync(path.join(secondRoot, 'stacks'), { recursive: true });
    for (const folder of [secondRoot, path.join(secondRoot, 'stacks')]) chownSync(folder, Number(world.WORLD_UID), Number(world.WORLD_GID));
  }, 60_000);
  afterAll(async () => {
    await removeAllUnits();
    rmSync(secondRoot, { recursive: true, force: true });
  });

  it('--dry-run prints this root\'s two units with the paths and TimeoutStopSec filled in, and writes nothing', async () => {
    const result = await cli(['install', '--dry-run']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`# ${unitDir}/${service}\n`);
    expect(result.stdout).toContain(`# ${unitDir}/${timer}\n`);
    expect(result.stdout).toContain(`ExecStart="${process.execPath}" "${world.WORLD_CLI}" --root "${root}" all\n`);
    expect(result.stdout).toContain(`ExecStopPost="${process.execPath}" "${world.WORLD_CLI}" --root "${root}" recover\n`);
    expect(result.stdout).toMatch(/^TimeoutStopSec=\d+s$/m);
    expect(result.stdout).toContain('TimeoutStartSec=infinity');
    expect(result.stdout).toContain('Persistent=true');
    expect(existsSync(path.join(unitDir, service))).toBe(false);
  });

  it('replaces an earlier version\'s stack-backup.timer of this root (disabled, removed, said so); the written units pass systemd-analyze verify', async () => {
    writeUserFile(
      path.join(unitDir, 'stack-backup.service'),
      `[Service]\nType=oneshot\nExecStart="${process.execPath}" "${world.WORLD_CLI}" --root "${root}" all\n`,
    );
    writeUserFile(path.join(unitDir, 'stack-backup.timer'), '[Timer]\nOnCalendar=*-*-* 03:00:00\n\n[Install]\nWantedBy=timers.target\n');
    await systemctl('daemon-reload');
    expect((await systemctl('enable', '--now', 'stack-backup.timer')).code).toBe(0);

    const result = await cli(['install']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('replaced stack-backup.timer of an earlier version: disabled it and removed');
    expect(result.stdout).toContain(`enabled ${timer} for ${root}`);
    expect(existsSync(path.join(unitDir, 'stack-backup.timer'))).toBe(false);
    expect((await systemctl('is-enabled', 'stack-backup.timer')).stdout.trim()).not.toBe('enabled');
    expect((await systemctl('is-enabled', timer)).stdout.trim()).toBe('enabled');
    const timers = await systemctl('list-timers', '--all', '--no-legend');
    expect(timers.stdout).toContain(timer);
    expect(timers.stdout).not.toMatch(/\sstack-backup\.timer\s/);

    const verify = await asUser(['systemd-analyze', '--user', 'verify', path.join(unitDir, service), path.join(unitDir, timer)]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);

    const doctor = await cli(['doctor']);
    expect(doctor.stdout).toContain(`OK    ${timer} is installed and enabled`);
    expect(doctor.stdout).toMatch(new RegExp(`OK {4}${service.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')} gives the undos enough time to stop`));
    expect(doctor.stdout).not.toContain('earlier version');
  });

  it('a second root gets its own timer; install --list shows both; uninstall removes only that root\'s', async () => {
    const second = await cli(['--root', secondRoot, 'install']);
    expect(second.code).toBe(0);
    const secondTimer = `stack-backup@${escapePath(secondRoot)}.timer`;
    expect((await systemctl('is-enabled', secondTimer)).stdout.trim()).toBe('enabled');
    expect((await systemctl('is-enabled', timer)).stdout.trim()).toBe('enabled');
    const listed = await cli(['install', '--list']);
    expect(listed.stdout).toBe(`${root}\t${timer}\n${secondRoot}\t${secondTimer}\n`);
    const removed = await cli(['--root', secondRoot, 'uninstall']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain(`disabled ${secondTimer}`);
    expect(existsSync(path.join(unitDir, secondTimer))).toBe(false);
    expect((await cli(['install', '--list'])).stdout).toBe(`${root}\t${timer}\n`);
  });

  it('starting the service backs up every stack CLEAN; ExecStopPost runs recover, which finds nothing', async () => {
    const start = await systemctl('start', service);
    expect(start.code).toBe(0);
    expect(jobRecords().map((record) => `${record.name} ${record.verdict}`)).toEqual(['composeapp CLEAN', 'ondemand CLEAN', 'plainapp CLEAN']);
    await waitUntil('the service to end', async () => (await unitState(service)) === 'inactive');
    expect(await unitState('plainapp-stack.service')).toBe('active');
    const result = await systemctl('show', '--property=Result', service);
    expect(result.stdout.trim()).toBe('Result=success');
  });

  it('a run systemd kills with SIGKILL mid-backup is recovered at once by ExecStopPost, not the next night', async () => {
    await resetWorld();
    await standin('set', 'duration', '6');
    expect((await systemctl('start', '--no-block', service)).code).toBe(0);
    await waitUntil('the composeapp job to start', () => jobStarted('composeapp'), 60_000);
    expect(await unitState('composeapp-stack.service')).toBe('inactive');
    await systemctl('kill', '--signal=SIGKILL', service);
    await waitUntil('the service and its recovery to end', async () => ['inactive', 'failed'].includes(await unitState(service)), 60_000);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect((await cli(['recover'])).stdout).toContain('nothing to recover');
    await standin('wait-idle', '30');
    await systemctl('reset-failed', service);
  });
});
