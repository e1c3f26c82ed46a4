/**
 * Monitoring for real: Healthchecks-style pings and a webhook against HTTP servers on loopback
 * started here, the Prometheus textfile, and `doctor`, all with the CLI run as the world's user.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { escapePath } from '../../src/host/install.js';
import { cli, logLines, resetRoot, resetWorld, root, systemctl, unitState, world, writeStack, writeUserFile } from './world.js';

interface Received {
  method: string;
  url: string;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The path of a request, without its query (the run ID). */
const pathOf = (entry: Received) => entry.url.replace(/\?.*$/, '');
const ridOf = (entry: Received) => new URL(entry.url, 'http://x').searchParams.get('rid');

let server: Server;
let base: string;
let received: Received[] = [];
/** Paths that answer with this status instead of 200. */
const failing = new Map<string, number>();

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      received.push({ method: request.method ?? '', url: request.url ?? '', body, headers: request.headers });
      response.statusCode = failing.get((request.url ?? '').replace(/\?.*$/, '')) ?? 200;
      response.end('OK');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(async () => {
  resetRoot();
  await resetWorld();
  received = [];
  failing.clear();
});

describe('Healthchecks pings and the webhook', () => {
  it('a good run: /start?rid=RUN, then /0?rid=RUN, and a JSON webhook with result, downtime and duration', async () => {
    writeStack('composeapp', `duplicati_jobs: [composeapp]\nmonitor:\n  healthchecks: ${base}/hc/composeapp\n  webhook: ${base}/hook\n`);
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    const pings = received.filter((entry) => entry.url.startsWith('/hc/'));
    expect(pings.map((entry) => `${entry.method} ${pathOf(entry)}`)).toEqual(['GET /hc/composeapp/start', 'POST /hc/composeapp/0']);
    expect(ridOf(pings[0]!)).toMatch(/^[0-9a-f-]{36}$/);
    expect(ridOf(pings[1]!)).toBe(ridOf(pings[0]!));
    expect(pings[1]!.body).toContain('composeapp: backed up');
    expect(pings[1]!.body).toContain('stop unit');
    const hook = received.find((entry) => entry.url === '/hook')!;
    const payload = JSON.parse(hook.body) as Record<string, unknown>;
    expect(payload).toMatchObject({ stack: 'composeapp', result: 'success', outcome: 'success', error: null });
    expect(payload.downtime_seconds).toBeGreaterThan(0);
    expect(payload.duration_seconds).toBeGreaterThan(0);
  });

  it('a failed run pings /1 with the log tail, and the webhook says failed with the error', async () => {
    writeUserFile(path.join(root, 'stack-backup.yaml'), `monitor:\n  healthchecks: ${base}/hc/all\n  webhook: ${base}/hook\n`);
    // A failure once the stack is down, so that the log tail holds the stop.
    writeStack('plainapp', 'duplicati_jobs: [plainapp]\nhooks:\n  pre_backup: "exit 3"\n');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    const fail = received.find((entry) => pathOf(entry) === '/hc/all/1')!;
    expect(fail.method).toBe('POST');
    expect(fail.body).toContain('plainapp: FAILED');
    expect(fail.body).toContain('pre_backup hook "exit 3" failed with exit 3');
    expect(fail.body).toContain('stop unit');
    const payload = JSON.parse(received.find((entry) => entry.url === '/hook')!.body) as Record<string, unknown>;
    expect(payload).toMatchObject({ stack: 'plainapp', result: 'failed' });
    expect(String(payload.error)).toContain('pre_backup hook "exit 3" failed');
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });

  it('monitoring that fails or does not answer never fails the backup, and the log says so', async () => {
    failing.set('/hc/composeapp/0', 500);
    failing.set('/hc/composeapp/start', 500);
    // A port where nothing listens: the connection is refused.
    writeStack('composeapp', 'duplicati_jobs: [composeapp]\nmonitor:\n  healthchecks: ' + base + '/hc/composeapp\n  webhook: http://127.0.0.1:9/nothing\n');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    // Each report was retried, then given up.
    expect(received.filter((entry) => pathOf(entry) === '/hc/composeapp/0')).toHaveLength(3);
    const warnings = logLines('composeapp').filter((line) => String(line.msg).startsWith('monitoring report not delivered'));
    expect(warnings.map((line) => String(line.msg)).join('\n')).toMatch(/127\.0\.0\.1:9\/nothing/);
    expect(logLines('composeapp').some((line) => line.msg === 'stack run end' && line.outcome === 'success')).toBe(true);
  });
});

describe('Uptime Kuma and ntfy', () => {
  it('a good and a failed stack: a push with status, msg and ping; a notification with title, priority and tags', async () => {
    writeUserFile(path.join(root, 'stack-backup.yaml'), `monitor:\n  uptime_kuma: ${base}/api/push/T0KEN?status=up&msg=OK&ping=\n  ntfy: ${base}/ntfy/backups\n`);
    writeStack('plainapp', 'duplicati_jobs: [no-such-job]\n');
    const result = await cli(['composeapp', 'plainapp']);
    expect(result.code).toBe(1);
    const pushes = received.filter((entry) => pathOf(entry) === '/api/push/T0KEN').map((entry) => Object.fromEntries(new URL(entry.url, base).searchParams));
    expect(pushes).toHaveLength(2);
    const good = pushes.find((push) => push.msg!.startsWith('composeapp'))!;
    expect(good).toMatchObject({ status: 'up', msg: 'composeapp: backed up' });
    expect(Number(good.ping)).toBeGreaterThan(0);
    const bad = pushes.find((push) => push.msg!.startsWith('plainapp'))!;
    expect(bad.status).toBe('down');
    expect(bad.msg).toContain('no-such-job');
    const notes = received.filter((entry) => pathOf(entry) === '/ntfy/backups');
    expect(notes).toHaveLength(2);
    const failed = notes.find((entry) => entry.body.startsWith('plainapp'))!;
    expect(failed.method).toBe('POST');
    expect(failed.headers.title).toMatch(/^stack-backup: plainapp FAILED on /);
    expect(failed.headers.priority).toBe('4');
    expect(failed.headers.tags).toBe('x,stack-backup');
    expect(failed.body).toContain('no-such-job');
    expect(notes.find((entry) => entry.body.startsWith('composeapp'))!.headers.tags).toBe('white_check_mark,stack-backup');
  });
});

describe('--json and -q for a run', () => {
  it('stack-backup --json: standard output holds only the run\'s document; progress and summary on standard error', async () => {
    writeStack('plainapp', 'duplicati_jobs: [no-such-job]\n');
    const result = await cli(['--json', 'composeapp', 'plainapp']);
    expect(result.code).toBe(1);
    const document = JSON.parse(result.stdout) as Record<string, any>;
    expect(Object.keys(document)).toEqual(['version', 'root', 'started_at', 'ended_at', 'exit_code', 'recovery', 'stacks']);
    expect(document).toMatchObject({ version: 1, root, exit_code: 1, recovery: { restored: [], failed: [] } });
    expect(document.started_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const [compose, plain] = document.stacks;
    expect(compose).toMatchObject({ stack: 'composeapp', result: 'success', outcome: 'success', restored: true, aborted: false, error: null, restore_errors: [] });
    // The exec driver reads the job's result from run --wait's last line (from 2.2.0.3; the stand-in claims a later version).
    expect(compose.jobs).toEqual([{ job: 'composeapp', result: 'Success', message: null }]);
    expect(compose.downtime_seconds).toBeGreaterThan(0);
    expect(compose.backup_seconds).toBeGreaterThan(0);
    expect(compose.log_file).toMatch(/logs\/backup-composeapp-\d{4}-\d\d-\d\d\.log$/);
    expect(plain).toMatchObject({ stack: 'plainapp', result: 'failed', outcome: 'failed' });
    expect(plain.error).toContain('no-such-job');
    expect(result.stderr).toMatch(/^STACK\s+RESULT/m);
  });

  it('-q: on the terminal only errors and the summary', async () => {
    const result = await cli(['-q', 'composeapp']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toContain('[composeapp] stop unit');
    expect(result.stderr).toMatch(/^composeapp\s+backed up/m);
  });
});

describe('metrics_file', () => {
  it('is written after each stack in the textfile format, with every configured stack; status opens with the same verdict', async () => {
    const metrics = path.join(root, 'metrics', 'stack_backup.prom');
    rmSync(path.dirname(metrics), { recursive: true, force: true });
    writeUserFile(path.join(root, 'stack-backup.yaml'), `metrics_file: ${metrics}\n`);
    writeStack('plainapp', 'duplicati_jobs: [no-such-job]\n');
    const result = await cli(['composeapp', 'plainapp']);
    expect(result.code).toBe(1);
    const text = readFileSync(metrics, 'utf8');
    // ondemand is configured but was not in this run: it shows, with nothing to say of a run.
    expect(text).toMatch(/^stack_backup_stack_configured\{stack="ondemand"\} 1$/m);
    expect(text).not.toMatch(/^stack_backup_last_run_success\{stack="ondemand"\}/m);
    for (const stack of ['composeapp', 'ondemand', 'plainapp']) expect(text).toMatch(new RegExp(`^stack_backup_recovery_pending\\{stack="${stack}"\\} 0$`, 'm'));
    // plainapp failed before it was stopped: failed, but restored.
    expect(text).toMatch(/^stack_backup_stack_restored\{stack="composeapp"\} 1$/m);
    expect(text).toMatch(/^stack_backup_stack_restored\{stack="plainapp"\} 1$/m);
    const status = await cli(['status']);
    expect(status.code).toBe(1);
    expect(status.stdout.split('\n')[0]).toBe('3 stacks: 1 failed (plainapp), 1 never backed up (ondemand)');
    // The exec driver read the job's result (run --wait's last line): a success, not "completed, result not seen".
    expect(status.stdout).toMatch(/^composeapp\s+\S+ \S+\s+\.{13}\+\s+success\s/m);
    expect(text).toContain('# TYPE stack_backup_last_run_success gauge');
    expect(text).toMatch(/^stack_backup_last_run_success\{stack="composeapp"\} 1$/m);
    expect(text).toMatch(/^stack_backup_last_run_success\{stack="plainapp"\} 0$/m);
    expect(text).toMatch(/^stack_backup_last_success_timestamp_seconds\{stack="composeapp"\} \d{10}$/m);
    expect(text).not.toMatch(/stack_backup_last_success_timestamp_seconds\{stack="plainapp"\}/);
    expect(text).toMatch(/^stack_backup_downtime_seconds\{stack="composeapp"\} \d+(\.\d+)?$/m);
    // The exec driver read the job's result (run --wait's last line, from 2.2.0.3; the stand-in claims a later version).
    expect(text).toMatch(/^stack_backup_last_run_outcome_known\{stack="composeapp"\} 1$/m);
  });
});

describe('doctor', () => {
  const unitDir = path.join(world.WORLD_HOME!, '.config', 'systemd', 'user');
  const instance = `stack-backup@${escapePath(root)}`;
  afterEach(async () => {
    await systemctl('disable', '--now', `${instance}.timer`);
    rmSync(path.join(unitDir, `${instance}.service`), { force: true });
    rmSync(path.join(unitDir, `${instance}.timer`), { force: true });
    await systemctl('daemon-reload');
  });

  it('passes every check in a sound world once the timer is installed, and touches nothing', async () => {
    const before = await doctor();
    expect(before.code).toBe(1);
    expect(before.stdout).toContain(`FAIL  ${instance}.timer is installed and enabled: `);
    expect(before.stdout).toMatch(/is installed and enabled: .*stack-backup install$/m);
    expect((await cli(['install'])).code).toBe(0);
    const after = await doctor();
    expect(after.stdout).not.toContain('FAIL');
    expect(after.stdout).toMatch(/^OK    Duplicati has job "plainapp" of plainapp \(ID 2\)$/m);
    expect(after.stdout).toMatch(/^OK    unit ondemand-proxy\.socket exists \(active\)$/m);
    expect(after.code).toBe(0);
    expect(existsSync(path.join(root, 'logs', 'journal.json'))).toBe(false);
  });

  it('names what is wrong and how to fix it: an unknown job, a missing unit, a stopped Duplicati', async () => {
    writeStack('plainapp', 'duplicati_jobs: [plainap]\n');
    writeStack('composeapp', 'duplicati_jobs: [composeapp]\nunit: gone-stack.service\n');
    let result = await doctor();
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^FAIL  Duplicati has job "plainap" of plainapp: no such job; Duplicati has: composeapp, plainapp, ondemand, snapbtrfs, snapxfs, quadpod, quadgroup$/m);
    expect(result.stdout).toMatch(/^FAIL  unit gone-stack\.service exists: it is not-found/m);
    await systemctl('stop', world.DUPLICATI_UNIT!);
    result = await doctor();
    // Any state but running: under load podman may still read "removing" or "stopping".
    expect(result.stdout).toMatch(/^FAIL  the Duplicati container "duplicati" runs: it is (?!running)[a-z]+; start it/m);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  async function doctor() {
    return cli(['doctor']);
  }
});
