/**
 * src/adapters/duplicati-session.ts and the exec driver through it, under a real sh with a
 * stand-in server util in a temporary folder: the container's programs are the ones the driver
 * sends (`podman exec -i CONTAINER` left out), the real process runner runs them, and the util
 * answers as duplicati-server-util does (RunBackup.cs, ServerStatus.cs, ListBackups.cs).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../../src/adapters/clock.js';
import { createExecDuplicati, type Duplicati } from '../../src/adapters/duplicati.js';
import { ArmedRun, RequestSession, armedRunArgv, sessionArgv } from '../../src/adapters/duplicati-session.js';
import { openInteractive, runCommand, type CommandRunner, type InteractiveRunner } from '../../src/adapters/process.js';
import { AbortedError } from '../../src/errors.js';
import { globalConfig, removeTempRoots, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const idle = 'Connecting to http://localhost:8200/...\nServer state: Running\nActive task: None\nScheduler tasks: Empty';
const active = (backupId: string) => `Connecting to http://localhost:8200/...\nServer state: Running\nActive task: [Task 12]: BackupId = ${backupId}\nScheduler tasks: Empty`;

/**
 * A server util in its own folder: `status` prints the file `state`; `--json list-backups` the
 * file `list` (or fails as a tool before 2.2 does when `no-json` exists); `run --wait` prints
 * its lines (Running backup, then, once the file `queued` exists or at once, Waiting for backup
 * to finish...), then what the file `end` says when it appears, and exits with `end-code`.
 * Every call appends its arguments to `calls`; `hang` makes status hang.
 */
function standIn(): { dir: string; util: string; set(name: string, text: string): void; calls(): string[] } {
  const dir = tempRoot();
  const util = path.join(dir, 'util');
  writeFileSync(
    util,
    `#!/bin/sh
d=${dir}
echo "$*" >> "$d/calls"
case "$*" in
status)
  [ -e "$d/hang" ] && sleep 30
  cat "$d/state" ;;
"--json list-backups")
  if [ -e "$d/no-json" ]; then echo "Unrecognized command or argument '--json'."; exit 1; fi
  cat "$d/list" ;;
"list-backups --detailed") cat "$d/detailed" ;;
"run --wait --poll-interval 1 -- "*)
  echo "Connecting to http://localhost:8200/..."
  echo "Running backup app (ID: 1)"
  while [ -e "$d/hold" ]; do sleep 0.05; done
  touch "$d/queued-by-run"
  echo "Waiting for backup to finish..."
  while [ ! -e "$d/end" ]; do echo "[12/05/2026 10:00:00]: Backup is running ..."; sleep 0.05; done
  cat "$d/end"
  exit "$(cat "$d/end-code" 2>/dev/null || echo 0)" ;;
*) echo "Unrecognized command or argument '$1'."; exit 1 ;;
esac
`,
    { mode: 0o755 },
  );
  writeFileSync(path.join(dir, 'state'), idle);
  writeFileSync(path.join(dir, 'list'), JSON.stringify({ Messages: [], Backups: [{ Id: '1', Name: 'app', Metadata: {} }] }));
  return {
    dir,
    util,
    set: (name, text) => writeFileSync(path.join(dir, name), text),
    calls: () => (existsSync(path.join(dir, 'calls')) ? readFileSync(path.join(dir, 'calls'), 'utf8').trim().split('\n') : []),
  };
}

/** Runs what the driver would run in the container right here: `podman exec [-i] CONTAINER` left out. */
const local: InteractiveRunner = (argv) => openInteractive(argv[2] === '-i' ? argv.slice(4) : argv.slice(3));
const opened: string[][] = [];
const counting: InteractiveRunner = (argv) => {
  opened.push([...argv]);
  return local(argv);
};
const oneShots: string[][] = [];
const localOneShot: CommandRunner = (argv, options) => {
  oneShots.push([...argv]);
  return runCommand(argv.slice(3), options);
};

const sessions: Array<{ end(): void }> = [];
const drivers: Duplicati[] = [];
afterEach(async () => {
  for (const session of sessions.splice(0)) session.end();
  for (const driver of drivers.splice(0)) await driver.close?.();
  opened.length = 0;
  oneShots.length = 0;
});

function session(util: string): RequestSession {
  const made = new RequestSession(local, sessionArgv({ container: 'duplicati', serverUtil: util }), systemClock);
  sessions.push(made);
  return made;
}

const waitFor = async (what: () => boolean, ms = 5000) => {
  const until = Date.now() + ms;
  while (!what()) {
    if (Date.now() > until) throw new Error('not in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('RequestSession under a real sh', () => {
  it('answers requests in order, each with its output and exit code, from one process', async () => {
    const server = standIn();
    const requests = session(server.util);
    const status = await requests.request('status', ['podman', 'exec', 'duplicati', server.util, 'status'], 5000);
    expect(status).toMatchObject({ exitCode: 0, stdout: idle, timedOut: false, argv: ['podman', 'exec', 'duplicati', server.util, 'status'] });
    server.set('no-json', '');
    const list = await requests.request('list json', [], 5000);
    expect(list).toMatchObject({ exitCode: 1, stdout: "Unrecognized command or argument '--json'.\n" });
    expect(requests.opened).toBe(1);
    expect(server.calls()).toEqual(['status', '--json list-backups']);
  });

  it('poll: the state, and the records only once the backup is neither queued nor active', async () => {
    const server = standIn();
    const requests = session(server.util);
    server.set('state', active('1'));
    const busy = await requests.request('poll json 1', [], 5000);
    expect(busy?.stdout).toBe(`${active('1')}\n\n@stack-backup:exit=0\n`);
    server.set('state', idle);
    const gone = await requests.request('poll json 1', [], 5000);
    expect(gone?.stdout).toContain('@stack-backup:exit=0\n{"Messages"');
    expect(server.calls()).toEqual(['status', 'status', '--json list-backups']);
  });

  it('a request that gets no answer in time ends the session (timed out); the next one opens another', async () => {
    const server = standIn();
    const requests = session(server.util);
    server.set('hang', '');
    const hung = await requests.request('status', [], 300);
    expect(hung).toMatchObject({ timedOut: true, exitCode: undefined });
    expect(requests.alive).toBe(false);
    rmSync(path.join(server.dir, 'hang'));
    const next = await requests.request('status', [], 5000);
    expect(next?.stdout).toBe(idle);
    expect(requests.opened).toBe(2);
  });

  it('a session whose program is gone answers nothing (undefined): the caller runs the command in a fresh exec', async () => {
    const dead = new RequestSession((argv) => openInteractive(['sh', '-c', 'exit 3', ...argv.slice(0, 0)]), [], systemClock);
    sessions.push(dead);
    expect(await dead.request('status', [], 5000)).toBeUndefined();
  });

  it('a signal ends the request and the session, with its reason', async () => {
    const server = standIn();
    server.set('hang', '');
    const requests = session(server.util);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new AbortedError('SIGTERM')), 100);
    await expect(requests.request('status', [], 10_000, controller.signal)).rejects.toThrow('aborted by SIGTERM');
    expect(requests.alive).toBe(false);
  });
});

describe('ArmedRun under a real sh', () => {
  const arm = (util: string) => new ArmedRun(local, armedRunArgv({ container: 'duplicati', serverUtil: util }, 'app', 600), systemClock);

  it('runs nothing until told; ended unfired, it exits and the tool never ran', async () => {
    const server = standIn();
    const armed = arm(server.util);
    armed.end();
    expect(await armed.exited).toBe(0);
    expect(server.calls()).toEqual([]);
  });

  it('fired: queued at "Waiting for backup to finish...", then its last line; poll lines are not kept', async () => {
    const server = standIn();
    const armed = arm(server.util);
    expect(armed.fire()).toBe(true);
    expect(await armed.until((output) => output.includes('Waiting for backup to finish...'), 5000)).toBe('seen');
    server.set('end-code', '2');
    server.set('end', 'Backup status: Warning\n');
    expect(await armed.until((output) => output.includes('Backup status:'), 5000)).toBe('seen');
    await armed.exited;
    expect(armed.exitCode).toBe(2);
    expect(armed.output).not.toContain('Backup is running');
    expect(server.calls()).toEqual(['run --wait --poll-interval 1 -- app']);
  });

  it('ended before the tool said the job is queued: the tool is killed inside, and queues nothing later', async () => {
    const server = standIn();
    server.set('hold', '');
    const armed = arm(server.util);
    armed.fire();
    expect(await armed.until((output) => output.includes('Waiting for backup'), 300)).toBe('timeout');
    armed.end();
    await armed.exited;
    rmSync(path.join(server.dir, 'hold'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(path.join(server.dir, 'queued-by-run'))).toBe(false);
  });
});

describe('the exec driver through sessions', () => {
  function driver(util: string): Duplicati {
    const settings = { ...globalConfig().duplicati, serverUtil: util, runTimeoutMs: 2000 };
    const made = createExecDuplicati(localOneShot, settings, { open: counting, clock: systemClock });
    drivers.push(made);
    return made;
  }

  it('status, the record, run and its result go through the session and the armed run: no exec of their own', async () => {
    const server = standIn();
    const duplicati = driver(server.util);
    expect((await duplicati.status()).paused).toBe(false);
    duplicati.ready?.('app');
    const prepared = await duplicati.prepare!('app');
    expect(prepared).toMatchObject({ backupId: '1', backupName: 'app', recordBefore: {} });
    const outcome = await duplicati.run('app', undefined, prepared);
    expect(outcome).toMatchObject({ backupId: '1', backupName: 'app', timedOut: false });
    expect(outcome.queuedAt).toBeGreaterThanOrEqual(outcome.requestedAt!);
    // The job ends: the record says it completed, run --wait says how.
    server.set('list', JSON.stringify({ Messages: [], Backups: [{ Id: '1', Name: 'app', Metadata: { LastBackupFinished: '20261205T100002Z' } }] }));
    server.set('end', 'Backup status: Warning\n');
    const result = await duplicati.result(outcome);
    expect(result.result).toBe('Warning');
    expect(result.message).toContain('"Backup status: Warning"');
    expect(oneShots).toEqual([]);
    // One session and one armed run, both opened before run was asked.
    expect(opened.map((argv) => argv.slice(0, 4))).toEqual([
      ['podman', 'exec', '-i', 'duplicati'],
      ['podman', 'exec', '-i', 'duplicati'],
    ]);
  });

  it('a poll that follows a job through the session: the state alone while it runs, the records with the look that sees it gone', async () => {
    const server = standIn();
    const duplicati = driver(server.util);
    server.set('state', active('1'));
    const busy = await duplicati.status(undefined, { jobsOnceGone: '1' });
    expect(busy).toMatchObject({ active: { task: 12, backupId: '1' } });
    expect(busy.jobs).toBeUndefined();
    server.set('state', idle);
    server.set('list', JSON.stringify({ Messages: [], Backups: [{ Id: '1', Name: 'app', Metadata: { LastBackupFinished: '20261205T100002Z' } }] }));
    const gone = await duplicati.status(undefined, { jobsOnceGone: '1' });
    expect(gone.active).toBeUndefined();
    expect(gone.jobs).toEqual([{ id: '1', name: 'app', record: { LastBackupFinished: '20261205T100002Z' } }]);
    expect(oneShots).toEqual([]);
  });

  it.each([
    ['Backup status: Success', 'Success'],
    ['Backup status: Error', 'Error'],
    ['Backup finished', 'Completed'],
    ['Backup status: No log generated', 'Completed'],
  ])('"%s" with a completed record: %s', async (line, expected) => {
    const server = standIn();
    const duplicati = driver(server.util);
    const outcome = await duplicati.run('app');
    server.set('list', JSON.stringify({ Messages: [], Backups: [{ Id: '1', Name: 'app', Metadata: { LastBackupFinished: '20261205T100002Z' } }] }));
    server.set('end', `${line}\n`);
    expect((await duplicati.result(outcome)).result).toBe(expected);
  });

  it('a record that says the task threw is Fatal with its message, whatever run --wait says', async () => {
    const server = standIn();
    const duplicati = driver(server.util);
    const outcome = await duplicati.run('app');
    server.set('list', JSON.stringify({ Messages: [], Backups: [{ Id: '1', Name: 'app', Metadata: { LastErrorDate: '20261205T100002Z', LastErrorMessage: 'source missing' } }] }));
    server.set('end', 'Backup status: Success\n');
    expect(await duplicati.result(outcome)).toEqual({ result: 'Fatal', message: 'source missing' });
  });

  it('a job that ended before run --wait first looked (it re-authenticates for ever): Completed from the record, and run --wait is ended', async () => {
    const server = standIn();
    const duplicati = driver(server.util);
    const outcome = await duplicati.run('app');
    server.set('list', JSON.stringify({ Messages: [], Backups: [{ Id: '1', Name: 'app', Metadata: { LastBackupFinished: '20261205T100002Z' } }] }));
    server.set('end', '[12/05/2026 10:00:01]: Re-authenticating...\nConnecting to http://localhost:8200/...\n');
    expect((await duplicati.result(outcome)).result).toBe('Completed');
  });

  it('run_timeout before the job is queued: timed out, and the tool is ended inside', async () => {
    const server = standIn();
    server.set('hold', '');
    const duplicati = driver(server.util);
    const outcome = await duplicati.run('app');
    expect(outcome.timedOut).toBe(true);
    expect(outcome.queuedAt).toBeUndefined();
    rmSync(path.join(server.dir, 'hold'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(path.join(server.dir, 'queued-by-run'))).toBe(false);
  });

  it('a session that cannot start (no sh in the container): each call goes through an exec of its own', async () => {
    const server = standIn();
    const settings = { ...globalConfig().duplicati, serverUtil: server.util };
    const broken: InteractiveRunner = () => openInteractive(['sh', '-c', 'echo "exec: sh: not found" >&2; exit 127']);
    const duplicati = createExecDuplicati(localOneShot, settings, { open: broken, clock: systemClock });
    drivers.push(duplicati);
    expect((await duplicati.status()).paused).toBe(false);
    expect((await duplicati.status()).paused).toBe(false);
    expect((await duplicati.status()).paused).toBe(false);
    expect(oneShots.map((argv) => argv.slice(3))).toEqual([
      [server.util, 'status'],
      [server.util, 'status'],
      [server.util, 'status'],
    ]);
  });

  it('the armed exec gone before run (the container restarted): the job runs through a fresh exec, as without sessions', async () => {
    const server = standIn();
    let armedOnce = false;
    const runner: InteractiveRunner = (argv) => {
      if (argv.at(-1)!.includes('run --wait') && !armedOnce) {
        armedOnce = true;
        return openInteractive(['sh', '-c', 'exit 137']);
      }
      return local(argv);
    };
    const settings = { ...globalConfig().duplicati, serverUtil: server.util, runTimeoutMs: 2000 };
    const duplicati = createExecDuplicati(localOneShot, settings, { open: runner, clock: systemClock });
    drivers.push(duplicati);
    duplicati.ready?.('app');
    await waitFor(() => armedOnce);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The fresh exec is the chained one of before: the listing, then `run` bounded by timeout.
    await duplicati.run('app', undefined, { job: 'app', backupId: '1', backupName: 'app', recordBefore: {} }).catch(() => undefined);
    expect(oneShots).toHaveLength(1);
    expect(oneShots[0]!.slice(0, 5)).toEqual(['podman', 'exec', 'duplicati', 'sh', '-c']);
    expect(oneShots[0]!.at(-1)).toContain(`timeout -s KILL 2 ${server.util} run -- app`);
  });
});
