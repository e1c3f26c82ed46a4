/**
 * The built CLI, run as an unprivileged user, against real systemd --user units, real rootless
 * Podman containers and the Duplicati stand-in. A backup is CLEAN when the stack's data did not
 * change while its job ran: that is what "not taken of a live stack" means here.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  cli,
  jobRecords,
  logLines,
  resetRoot,
  resetWorld,
  root,
  runningContainers,
  standin,
  startCli,
  systemctl,
  unitState,
  waitUntil,
  writeStack,
  writeUserFile,
  world,
} from './world.js';
import { connect } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

async function baselineStates(): Promise<Record<string, string>> {
  const units = ['composeapp-stack.service', 'plainapp-stack.service', 'ondemand-stack.service', 'ondemand-proxy.socket', 'ondemand-proxy.service'];
  return Object.fromEntries(await Promise.all(units.map(async (unit) => [unit, await unitState(unit)] as const)));
}

const baseline = {
  'composeapp-stack.service': 'active',
  'plainapp-stack.service': 'active',
  'ondemand-stack.service': 'active',
  'ondemand-proxy.socket': 'active',
  'ondemand-proxy.service': 'inactive',
};

beforeEach(async () => {
  resetRoot();
  await resetWorld();
});

describe('stack-backup all against the real world', () => {
  it('backs up every stack kind CLEAN, in name order, and leaves every unit and socket as it was', async () => {
    expect(await baselineStates()).toEqual(baseline);
    const result = await cli(['all']);
    expect(result.stderr).toMatch(/STACK\s+RESULT\s+DOWNTIME\s+BACKUP/);
    expect(result.code).toBe(0);
    const records = jobRecords();
    expect(records.map((record) => `${record.name} ${record.verdict}`)).toEqual(['composeapp CLEAN', 'ondemand CLEAN', 'plainapp CLEAN']);
    expect(await baselineStates()).toEqual(baseline);
    expect(await runningContainers('composeapp')).toHaveLength(2);
    for (const stack of ['composeapp', 'ondemand', 'plainapp']) {
      const lines = logLines(stack);
      expect(lines.some((line) => line.step === 'stop unit' && line.outcome === 'done')).toBe(true);
      expect(lines.some((line) => line.step === 'start unit' && line.outcome === 'done')).toBe(true);
      // The exec driver reads the job's result from run --wait's last line (from 2.2.0.3; the stand-in claims a later version).
      expect(lines.at(-1)).toMatchObject({ msg: 'stack run end', outcome: 'success' });
    }
  });

  it('waits for a container that outlives its unit before the backup (plainapp)', async () => {
    const result = await cli(['plainapp-stack.service']);
    expect(result.code).toBe(0);
    const [record] = jobRecords();
    expect(record).toMatchObject({ name: 'plainapp', verdict: 'CLEAN' });
    const wait = logLines('plainapp').find((line) => line.step === 'wait for containers to exit' && line.event === 'end');
    // The slow container keeps writing for a few seconds after the unit reads inactive.
    expect(Number(wait?.duration_ms)).toBeGreaterThan(1000);
  });
});

describe('restore policy x prior state', () => {
  it('previous: a stack that was stopped is backed up and stays stopped', async () => {
    await systemctl('stop', 'composeapp-stack.service');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
    expect(await unitState('composeapp-stack.service')).toBe('inactive');
    expect(await runningContainers('composeapp')).toHaveLength(0);
  });

  it('always: a stack that was stopped is started after the backup', async () => {
    await systemctl('stop', 'composeapp-stack.service');
    writeStack('composeapp', 'duplicati_jobs: [composeapp]\nrestore_policy: always\n');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(await runningContainers('composeapp')).toHaveLength(2);
  });

  it('always: a running stack is running again after the backup', async () => {
    writeStack('plainapp', 'duplicati_jobs: [plainapp]\nrestore_policy: always\n');
    expect((await cli(['plainapp'])).code).toBe(0);
    expect(await unitState('plainapp-stack.service')).toBe('active');
    expect(jobRecords()).toMatchObject([{ verdict: 'CLEAN' }]);
  });
});

describe('on-demand stacks', () => {
  it('a client that keeps connecting to the socket cannot start the stack until the job is done', async () => {
    await standin('set', 'duration', '4');
    // Stop the stack so only the socket can bring it up: the visitor's connection would.
    await systemctl('stop', 'ondemand-stack.service');
    let stop = false;
    const connections = (async () => {
      while (!stop) {
        await new Promise<void>((resolve) => {
          const socket = connect(Number(world.FRONTPORT), '127.0.0.1');
          socket.on('connect', () => socket.end());
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
          socket.setTimeout(1000, () => socket.destroy());
        });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    try {
      const result = await cli(['ondemand']);
      expect(result.code).toBe(0);
    } finally {
      stop = true;
      await connections;
    }
    expect(jobRecords()).toMatchObject([{ name: 'ondemand', verdict: 'CLEAN' }]);
    expect(await unitState('ondemand-proxy.socket')).toBe('active');
  });

  it('a stack woken by a visitor before the run is backed up CLEAN and brought back with its service', async () => {
    await new Promise<void>((resolve) => {
      const socket = connect(Number(world.FRONTPORT), '127.0.0.1', () => socket.end());
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    expect(await unitState('ondemand-proxy.service')).toBe('active');
    const result = await cli(['ondemand']);
    expect(result.code).toBe(0);
    expect(jobRecords()).toMatchObject([{ name: 'ondemand', verdict: 'CLEAN' }]);
    expect(await unitState('ondemand-proxy.socket')).toBe('active');
    expect(await unitState('ondemand-proxy.service')).toBe('active');
    expect(await unitState('ondemand-stack.service')).toBe('active');
  });
});

describe('hooks', () => {
  it('run in phase order, in the root, with the stack environment, output in the log', async () => {
    const phases = ['pre_stop', 'post_stop', 'pre_backup', 'post_backup', 'pre_start', 'post_start', 'verify'];
    const hook = (phase: string) =>
      `  ${phase}: 'echo "$STACK_PHASE $STACK_NAME $STACK_UNIT $STACK_BACKUP_ROOT $(pwd) $(systemctl --user is-active $STACK_UNIT)" >> hooks.out; echo said-${phase}'`;
    writeStack('plainapp', `duplicati_jobs: [plainapp]\nhooks:\n${phases.map(hook).join('\n')}\n`);
    writeUserFile(path.join(root, 'hooks.out'), '');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(0);
    const lines = readFileSync(path.join(root, 'hooks.out'), 'utf8').trim().split('\n');
    expect(lines.map((line) => line.split(' ')[0])).toEqual(phases);
    for (const line of lines) {
      const [, name, unit, rootVariable, cwd] = line.split(' ');
      expect([name, unit, rootVariable, cwd]).toEqual(['plainapp', 'plainapp-stack.service', root, root]);
    }
    // The unit is down from post_stop to pre_start, up again for post_start and verify.
    expect(lines.map((line) => line.split(' ')[5])).toEqual(['active', 'inactive', 'inactive', 'inactive', 'inactive', 'active', 'active']);
    expect(logLines('plainapp').some((line) => String(line.output ?? '').includes('said-pre_backup'))).toBe(true);
  });

  const failing: Array<[string, boolean]> = [
    ['pre_stop', false],
    ['post_stop', false],
    ['pre_backup', false],
    ['post_backup', true],
    ['pre_start', true],
    ['post_start', true],
    ['verify', true],
  ];
  it.each(failing)('a failing %s hook fails the stack (exit 1) and leaves every unit and socket as it was', async (phase, backupRan) => {
    writeStack(
      'ondemand',
      `duplicati_jobs: [ondemand]\nfreeze_ondemand: true\nondemand_socket: ondemand-proxy.socket\nondemand_service: ondemand-proxy.service\nhooks:\n  ${phase}: 'echo broken >&2; exit 3'\n`,
    );
    const result = await cli(['ondemand']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${phase} hook`);
    expect(await baselineStates()).toEqual(baseline);
    const records = jobRecords();
    expect(records.length).toBe(backupRan ? 1 : 0);
    if (backupRan) expect(records[0]!.verdict).toBe('CLEAN');
    const failure = logLines('ondemand').find((line) => line.step === `${phase} hook` && line.outcome === 'failed');
    expect(failure?.output).toContain('broken');
  });
});

describe('Duplicati queue and failures', () => {
  it('a job that sits in the queue first is not taken as done before it ran (pickup delay)', async () => {
    await standin('set', 'pickup_delay', '3');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    const [record] = jobRecords();
    expect(record).toMatchObject({ name: 'composeapp', verdict: 'CLEAN' });
    const started = logLines('composeapp').find((line) => line.step === 'start unit' && line.event === 'start');
    expect(Date.parse(String(started?.time))).toBeGreaterThanOrEqual(record!.endedAt);
  });

  it('a `run` that hangs after enqueuing is ended after run_timeout and the job still followed', async () => {
    await standin('flag', 'hang_run', 'on');
    const result = await cli(['composeapp'], { DUPLICATI_RUN_TIMEOUT: '2' });
    expect(result.code).toBe(0);
    expect(jobRecords()).toMatchObject([{ name: 'composeapp', verdict: 'CLEAN' }]);
    expect(result.stderr).toContain('did not return within run_timeout');
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  it('an unknown job fails the stack before it is touched: never stopped (issue 30), the closest job offered', async () => {
    writeStack('composeapp', 'duplicati_jobs: [composeap]\n');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('preflight: Duplicati has no backup job with the name or ID "composeap" (did you mean "composeapp"?)');
    expect(result.stderr).toContain('nothing was touched');
    expect(logLines('composeapp').some((line) => line.step === 'stop unit')).toBe(false);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(jobRecords()).toEqual([]);
  });

  it('the wait timeout fails the stack, which is restored', async () => {
    await standin('set', 'duration', '8');
    const result = await cli(['plainapp'], { DUPLICATI_WAIT_TIMEOUT: '2' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('wait_timeout');
    expect(await unitState('plainapp-stack.service')).toBe('active');
    await standin('wait-idle', '20');
  });

  it('a paused server fails the stack with a message that says so, and the stack is not stopped', async () => {
    await standin('flag', 'paused', 'on');
    writeUserFile(path.join(root, 'stack-backup.yaml'), 'duplicati:\n  paused_timeout: 2\n');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Duplicati server is paused/);
    expect(await unitState('composeapp-stack.service')).toBe('active');
    expect(logLines('composeapp').some((line) => line.step === 'stop unit')).toBe(false);
  });

  it('a job already queued by Duplicati before the stop is waited for, then a fresh job runs on the stopped stack', async () => {
    await standin('set', 'duration', '3');
    await standin('util', 'run', 'composeapp');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    const records = jobRecords();
    expect(records).toHaveLength(2);
    expect(records[0]!.verdict).toBe('DIRTY');
    expect(records[1]!.verdict).toBe('CLEAN');
  });
});

describe('runs and the lock', () => {
  it('a second run while the first holds the lock exits 75 at once and touches nothing', async () => {
    await standin('set', 'duration', '5');
    const first = startCli(['composeapp']);
    const lock = path.join(root, 'logs', 'stack-backup.lock');
    // Polled, not slept: the first run's start can take seconds on a loaded machine.
    await waitUntil('the first run to hold the lock', () => existsSync(lock), 60_000);
    const second = await cli(['plainapp']);
    expect(second.code).toBe(75);
    // "At once": it did not wait for the first run, which still holds its 5 s job.
    expect(first.child.exitCode).toBeNull();
    expect(second.stderr).toContain('another stack-backup run holds the lock');
    expect(await unitState('plainapp-stack.service')).toBe('active');
    expect((await first.finished).code).toBe(0);
    expect(jobRecords().map((record) => record.name)).toEqual(['composeapp']);
    expect(logLines('plainapp')).toEqual([]);
  });

  it('`all` with one failing stack backs up the others and exits 1', async () => {
    writeStack('ondemand', 'duplicati_jobs: [missing-job]\nfreeze_ondemand: true\nondemand_socket: ondemand-proxy.socket\n');
    const result = await cli(['all']);
    expect(result.code).toBe(1);
    expect(jobRecords().map((record) => `${record.name} ${record.verdict}`)).toEqual(['composeapp CLEAN', 'plainapp CLEAN']);
    expect(result.stderr).toMatch(/ondemand\s+FAILED/);
    expect(await baselineStates()).toEqual(baseline);
  });

  it('a bad stack file is refused with exit 2 naming file and key, and nothing is touched', async () => {
    writeStack('plainapp', 'duplicati_jobs: [plainapp]\nrestore_policy: sometimes\n');
    const result = await cli(['all']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('stacks/plainapp.yaml: restore_policy');
    expect(jobRecords()).toEqual([]);
    expect(await baselineStates()).toEqual(baseline);
  });

  it('--dry-run prints the plan and touches nothing', async () => {
    const result = await cli(['--dry-run', 'all']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('systemctl --user stop -- ondemand-proxy.socket');
    // The podman exec that runs the job on one line, opened before the stop, and the one of before should it be gone.
    expect(result.stdout).toMatch(/podman exec -i duplicati sh -c 'echo @stack-backup:armed; IFS= read -r go .* timeout -s KILL \d+ duplicati-server-util run --wait --poll-interval 1 -- plainapp </);
    expect(result.stdout).toMatch(/podman exec duplicati sh -c 'timeout -s KILL \d+ duplicati-server-util --json list-backups 2>&1; .*; exec timeout -s KILL \d+ duplicati-server-util run -- plainapp' \(run_timeout/);
    expect(jobRecords()).toEqual([]);
    expect(await baselineStates()).toEqual(baseline);
  });
});
