/**
 * One fault at a time, in the real world: after each, every unit and socket is as before (or
 * as the restore policy says), nothing is left frozen, and a backup reported done is CLEAN.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, chownSync } from 'node:fs';
import path from 'node:path';
import {
  asUser,
  downStates,
  cli,
  jobRecords,
  jobStarted,
  logLines,
  resetRoot,
  resetWorld,
  root,
  standin,
  startCli,
  systemctl,
  unitState,
  waitUntil,
  world,
  writeStack,
  writeUserFile,
} from './world.js';

const units = ['composeapp-stack.service', 'plainapp-stack.service', 'ondemand-stack.service', 'ondemand-proxy.socket', 'ondemand-proxy.service'];
const baseline = ['active', 'active', 'active', 'active', 'inactive'];
const states = () => Promise.all(units.map(unitState));
// Reaching the job takes a unit stop, which on a loaded machine alone can take 20 s: this wait
// is no speed claim, so it is generous.
const jobStartTimeoutMs = 120_000;
const journal = path.join(root, 'logs', 'journal.json');
const pendingEntries = () => (existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as { entries: unknown[] }).entries : []);

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

describe('signals', () => {
  it('SIGTERM mid-backup: the job step is ended, the stack and its socket are restored, exit 143', async () => {
    await standin('set', 'duration', '8');
    const run = startCli(['ondemand']);
    await waitUntil('the ondemand job to start', () => jobStarted('ondemand'), jobStartTimeoutMs);
    expect(downStates).toContain(await unitState('ondemand-stack.service'));
    expect(await unitState('ondemand-proxy.socket')).toBe('inactive');
    run.child.kill('SIGTERM');
    const result = await run.finished;
    expect(result.code).toBe(143);
    expect(result.stderr).toContain('SIGTERM received');
    expect(await states()).toEqual(baseline);
    expect(pendingEntries()).toEqual([]);
    expect(logLines('ondemand').at(-1)).toMatchObject({ outcome: 'failed', error: expect.stringMatching(/^aborted by SIGTERM; Duplicati may still run job ondemand/) });
    // The exec driver cannot stop the job Duplicati still runs, which now reads a live stack: the log says so.
    expect(logLines('ondemand').some((line) => String(line.msg).includes('Duplicati may still run job ondemand (backup 3'))).toBe(true);
    await standin('wait-idle', '20');
  });

  it('a second signal does not skip the undos', async () => {
    await standin('set', 'duration', '8');
    // The second signal must land while the undos run: the pre_start hook holds them for 8 s, far
    // longer than the 100 ms poll and a loaded machine's lag between the log line and the kill.
    writeStack('composeapp', 'duplicati_jobs: [composeapp]\nhooks:\n  pre_start: sleep 8\n');
    const run = startCli(['composeapp']);
    await waitUntil('the composeapp job to start', () => jobStarted('composeapp'), jobStartTimeoutMs);
    run.child.kill('SIGINT');
    await waitUntil('the restore to begin', () => logLines('composeapp').some((line) => line.step === 'pre_start hook'));
    run.child.kill('SIGINT');
    const result = await run.finished;
    expect(result.code).toBe(130);
    expect(result.stderr).toContain('received again');
    expect(await unitState('composeapp-stack.service')).toBe('active');
    await standin('wait-idle', '20');
  });

  it('SIGKILL mid-backup leaves the stack frozen; `status` says so (exit 1) and `recover` restores it (exit 0) and writes the metrics', async () => {
    await standin('set', 'duration', '4');
    const metrics = path.join(root, 'logs', 'stack_backup.prom');
    writeUserFile(path.join(root, 'stack-backup.yaml'), `metrics_file: ${metrics}\n`);
    const run = startCli(['ondemand']);
    await waitUntil('the ondemand job to start', () => jobStarted('ondemand'), jobStartTimeoutMs);
    run.child.kill('SIGKILL');
    await run.finished;
    expect(downStates).toContain(await unitState('ondemand-stack.service'));
    expect(await unitState('ondemand-proxy.socket')).toBe('inactive');
    await standin('wait-idle', '20');
    const status = await cli(['status']);
    expect(status.code).toBe(1);
    expect(status.stdout.split('\n')[0]).toBe('3 stacks: 1 recovery pending (ondemand), 2 never backed up (composeapp, plainapp)');
    expect(status.stdout).toMatch(/ondemand.*restore unit, unfreeze on-demand socket/);
    // The run died before any stack ended, so it wrote no metrics; `status` only reads.
    expect(existsSync(metrics)).toBe(false);
    const dryRun = await cli(['recover', '--dry-run']);
    expect(dryRun.code).toBe(0);
    expect(dryRun.stdout).toMatch(/1\. ondemand: restore unit .*\n\s+systemctl --user start -- ondemand-stack.service/);
    expect(dryRun.stdout).toMatch(/2\. ondemand: unfreeze on-demand socket .*\n\s+systemctl --user start -- ondemand-proxy.socket/);
    expect(dryRun.stdout).toContain('Dry run: nothing was touched (2 pending undos)');
    expect(downStates).toContain(await unitState('ondemand-stack.service'));
    expect(await unitState('ondemand-proxy.socket')).toBe('inactive');
    expect(pendingEntries()).toHaveLength(2);
    const recover = await cli(['recover']);
    expect(recover.code).toBe(0);
    expect(recover.stdout).toContain('recovered: ondemand: restore unit');
    expect(recover.stdout).toContain('recovered: ondemand: unfreeze on-demand socket');
    expect(readFileSync(metrics, 'utf8')).toMatch(/^stack_backup_recovery_pending\{stack="ondemand"\} 0$/m);
    expect(await states()).toEqual(baseline);
    expect(pendingEntries()).toEqual([]);
    expect((await cli(['status'])).code).toBe(0);
    expect((await cli(['recover'])).stdout).toContain('nothing to recover');
  });

  it('SIGKILL, then at once a normal run: it waits out the stale lock, recovers first, then backs up CLEAN', async () => {
    await standin('set', 'duration', '3');
    const run = startCli(['ondemand']);
    await waitUntil('the ondemand job to start', () => jobStarted('ondemand'), jobStartTimeoutMs);
    run.child.kill('SIGKILL');
    await run.finished;
    await standin('wait-idle', '20');
    const started = Date.now();
    const next = await cli(['ondemand']);
    expect(next.code).toBe(0);
    expect(next.stderr).toContain('recovering first');
    expect(next.stderr).toContain('recovered: ondemand: restore unit');
    // The stale lock was waited out in seconds, not refused: the stack's own run began soon
    // after the recovery, whatever the backup and the restore took on a loaded machine.
    const begun = logLines('ondemand').filter((line) => line.msg === 'stack run start').at(-1);
    expect(Date.parse(String(begun?.time)) - started).toBeLessThan(60_000);
    expect(jobRecords().at(-1)).toMatchObject({ name: 'ondemand', verdict: 'CLEAN' });
    expect(await states()).toEqual(baseline);
    expect(pendingEntries()).toEqual([]);
  });

  it('a stale lock left by a dead run does not block the next run for more than a few seconds', async () => {
    const lock = path.join(root, 'logs', 'stack-backup.lock');
    mkdirSync(lock, { recursive: true });
    chownSync(lock, Number(world.WORLD_UID), Number(world.WORLD_GID));
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const started = Date.now();
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    // The stack's run began within seconds (the lock's stale bound is 5 s), whatever the backup took.
    const begun = logLines('composeapp').find((line) => line.msg === 'stack run start');
    expect(Date.parse(String(begun?.time)) - started).toBeLessThan(15_000);
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
  });
});

describe('broken surroundings: the stack fails before anything is touched', () => {
  afterEach(async () => {
    await systemctl('start', 'podman.socket');
  });

  it('the Podman API is down', async () => {
    await systemctl('stop', 'podman.socket', 'podman.service');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/preflight: the Podman API does not answer/);
    expect(await unitState('plainapp-stack.service')).toBe('active');
    expect(logLines('plainapp').some((line) => line.step === 'stop unit')).toBe(false);
  });

  it('the Duplicati container is stopped', async () => {
    await systemctl('stop', world.DUPLICATI_UNIT!);
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/preflight: the Duplicati container "duplicati" is not running/);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  it('the stack unit does not exist', async () => {
    writeStack('composeapp', 'duplicati_jobs: [composeapp]\nunit: no-such-stack.service\n');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/unit no-such-stack.service is not-found/);
    expect(await states()).toEqual(baseline);
  });

  it('a world-writable stack file is refused with exit 2 and nothing is touched', async () => {
    chmodSync(path.join(root, 'stacks', 'plainapp.yaml'), 0o666);
    const result = await cli(['all']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('stacks/plainapp.yaml: refused: every user can write it (mode 0666)');
    expect(result.stderr).toContain('chmod go-w');
    expect(jobRecords()).toEqual([]);
    expect(await states()).toEqual(baseline);
  });
});

describe('hooks that hang', () => {
  it('are killed with their whole process group after hook_timeout, and the stack is restored', async () => {
    writeUserFile(path.join(root, 'hooks', 'stuck.sh'), '#!/bin/sh\nsleep 600 &\nsleep 601\n', 0o755);
    writeStack('plainapp', 'duplicati_jobs: [plainapp]\nhook_timeout: 2\nhooks:\n  pre_backup: hooks/stuck.sh\n');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ran longer than 2 s and was killed');
    // Killed at its timeout: the hook step itself ended within seconds of hook_timeout.
    const hook = logLines('plainapp').find((line) => line.step === 'pre_backup hook' && line.event === 'end');
    expect(hook).toMatchObject({ outcome: 'failed' });
    expect(Number(hook?.duration_ms)).toBeLessThan(15_000);
    expect(await unitState('plainapp-stack.service')).toBe('active');
    expect(jobRecords()).toEqual([]);
    const left = await asUser(['pgrep', '-u', world.WORLD_USER!, '-f', 'sleep 60[01]']);
    expect(left.stdout.trim()).toBe('');
  });
});

describe('a full disk under logs/', () => {
  const logs = path.join(root, 'logs');
  const mounted = () => readFileSync('/proc/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === logs);

  afterEach(() => {
    if (mounted()) execFileSync('umount', ['-l', logs]);
  });

  it('logs/ fills while the job runs: the stack is still restored, the run ends, exit 1, the summary says the log is incomplete', async () => {
    // A tiny tmpfs over the root's logs/, as a small /var that runs full in the night.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'stack-backup-test-logs', logs]);
    chownSync(logs, Number(world.WORLD_UID), Number(world.WORLD_GID));
    await standin('set', 'duration', '4');
    const run = startCli(['ondemand']);
    await waitUntil('the ondemand job to start', () => jobStarted('ondemand'), jobStartTimeoutMs);
    expect(downStates).toContain(await unitState('ondemand-stack.service'));
    // Fill it up (as root, which a tmpfs does not spare either): every later write gets ENOSPC.
    try {
      execFileSync('dd', ['if=/dev/zero', 'bs=64k', 'status=none', `of=${path.join(logs, 'filler')}`], { stdio: 'ignore' });
    } catch {
      // dd ends with "No space left on device": that is the point.
    }
    // The log's last page still has room; fill it too, with newlines (which logLines skips), so
    // the next log line fails as on a disk that filled at just that moment.
    const logFile = readdirSync(logs).find((name) => name.startsWith('backup-ondemand-'))!;
    execFileSync('sh', ['-c', `yes '' | dd bs=1 status=none conv=notrunc oflag=append of=${path.join(logs, logFile)} 2>/dev/null || true`]);
    const result = await run.finished;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('cannot write the log');
    expect(result.stderr).toMatch(/ondemand\s+FAILED .*the log is incomplete: .*no space left on device/i);
    expect(result.stderr).toContain('the crash journal was not updated');
    expect(await states()).toEqual(baseline);
    await standin('wait-idle', '20');
    execFileSync('umount', [logs]);
    // Once there is room again, what the journal still holds is cleared by a replay that changes nothing.
    expect((await cli(['recover'])).code).toBe(0);
    expect(pendingEntries()).toEqual([]);
    expect(await states()).toEqual(baseline);
  });
});

describe('a backup_mount whose server is gone', () => {
  const source = path.join(world.WORLD_DIR ?? path.dirname(root), 'fuse-source');
  const mountPoint = path.join(world.WORLD_DIR ?? path.dirname(root), 'fuse-mount');
  const mounted = () => readFileSync('/proc/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === mountPoint);
  let daemon: ChildProcess | undefined;

  afterEach(() => {
    if (daemon?.pid !== undefined) process.kill(daemon.pid, 'SIGCONT');
    if (mounted()) execFileSync('umount', ['-l', mountPoint]);
    daemon?.kill('SIGTERM');
    daemon = undefined;
  });

  it('a FUSE mount whose daemon is stopped: preflight fails within its timeout, nothing is touched, the process exits', async () => {
    mkdirSync(source, { recursive: true });
    mkdirSync(mountPoint, { recursive: true });
    // allow_other: the daemon runs as root, the run as the world's user. What `readdir` meets
    // on an NFS or SMB mount whose server is gone: a request nobody answers.
    daemon = spawn('bindfs', ['-f', '-o', 'allow_other', source, mountPoint], { stdio: 'ignore' });
    await waitUntil('the FUSE mount', mounted, 10_000);
    process.kill(daemon.pid!, 'SIGSTOP');
    writeUserFile(path.join(root, 'stack-backup.yaml'), `backup_mount: ${mountPoint}\n`);
    const started = Date.now();
    const result = await cli(['plainapp']);
    const elapsed = Date.now() - started;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/preflight: backup_mount .*fuse-mount is not reachable: no answer within 30 s; nothing was touched/);
    // The 30 s check, the kill, and the exit: not held up by the read that never returns (a
    // process held by it would never exit, and the test would time out instead).
    expect(elapsed).toBeLessThan(120_000);
    expect(await states()).toEqual(baseline);
    expect(logLines('plainapp').some((line) => line.step === 'stop unit')).toBe(false);
    const left = await asUser(['pgrep', '-u', world.WORLD_USER!, '-f', 'opendirSync']);
    expect(left.stdout.trim()).toBe('');
  });
});
