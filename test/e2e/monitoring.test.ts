/**
 * Monitoring for real: Healthchecks-style pings and a webhook against HTTP servers on loopback
 * started here, the Prometheus textfile, and `doctor`, all with the CLI run as the world's user.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cli, logLines, resetRoot, resetWorld, root, systemctl, unitState, world, writeStack, writeUserFile } from './world.js';

interface Received {
  method: string;
  url: string;
  body: string;
}

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
      received.push({ method: request.method ?? '', url: request.url ?? '', body });
      response.statusCode = failing.get(request.url ?? '') ?? 200;
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
  it('a good run: /start, then the bare URL, and a JSON webhook with result, downtime and duration', async () => {
    writeStack('composeapp', `duplicati_jobs: [composeapp]\nmonitor:\n  healthchecks: ${base}/hc/composeapp\n  webhook: ${base}/hook\n`);
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    const pings = received.filter((entry) => entry.url.startsWith('/hc/'));
    expect(pings.map((entry) => `${entry.method} ${entry.url}`)).toEqual(['GET /hc/composeapp/start', 'POST /hc/composeapp']);
    expect(pings[1]!.body).toContain('composeapp: ran, outcome unknown');
    const hook = received.find((entry) => entry.url === '/hook')!;
    const payload = JSON.parse(hook.body) as Record<string, unknown>;
    expect(payload).toMatchObject({ stack: 'composeapp', result: 'success', outcome: 'unknown', error: null });
    expect(payload.downtime_seconds).toBeGreaterThan(0);
    expect(payload.duration_seconds).toBeGreaterThan(0);
  });

  it('a failed run pings /fail with the log tail, and the webhook says failed with the error', async () => {
    writeUserFile(path.join(root, 'stack-backup.yaml'), `monitor:\n  healthchecks: ${base}/hc/all\n  webhook: ${base}/hook\n`);
    writeStack('plainapp', 'duplicati_jobs: [no-such-job]\n');
    const result = await cli(['plainapp']);
    expect(result.code).toBe(1);
    const fail = received.find((entry) => entry.url === '/hc/all/fail')!;
    expect(fail.method).toBe('POST');
    expect(fail.body).toContain('plainapp: FAILED');
    expect(fail.body).toContain('no backup job with the name or ID "no-such-job"');
    expect(fail.body).toContain('stop unit');
    const payload = JSON.parse(received.find((entry) => entry.url === '/hook')!.body) as Record<string, unknown>;
    expect(payload).toMatchObject({ stack: 'plainapp', result: 'failed' });
    expect(String(payload.error)).toContain('no-such-job');
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });

  it('monitoring that fails or does not answer never fails the backup, and the log says so', async () => {
    failing.set('/hc/composeapp', 500);
    failing.set('/hc/composeapp/start', 500);
    // A port where nothing listens: the connection is refused.
    writeStack('composeapp', 'duplicati_jobs: [composeapp]\nmonitor:\n  healthchecks: ' + base + '/hc/composeapp\n  webhook: http://127.0.0.1:9/nothing\n');
    const result = await cli(['composeapp']);
    expect(result.code).toBe(0);
    // Each report was retried, then given up.
    expect(received.filter((entry) => entry.url === '/hc/composeapp')).toHaveLength(3);
    const warnings = logLines('composeapp').filter((line) => String(line.msg).startsWith('monitoring report not delivered'));
    expect(warnings.map((line) => String(line.msg)).join('\n')).toMatch(/127\.0\.0\.1:9\/nothing/);
    expect(logLines('composeapp').some((line) => line.msg === 'stack run end' && line.outcome === 'unknown')).toBe(true);
  });
});

describe('metrics_file', () => {
  it('is written after each stack in the textfile format, with every stack of the history', async () => {
    const metrics = path.join(root, 'metrics', 'stack_backup.prom');
    rmSync(path.dirname(metrics), { recursive: true, force: true });
    writeUserFile(path.join(root, 'stack-backup.yaml'), `metrics_file: ${metrics}\n`);
    writeStack('plainapp', 'duplicati_jobs: [no-such-job]\n');
    const result = await cli(['composeapp', 'plainapp']);
    expect(result.code).toBe(1);
    const text = readFileSync(metrics, 'utf8');
    expect(text).toContain('# TYPE stack_backup_last_run_success gauge');
    expect(text).toMatch(/^stack_backup_last_run_success\{stack="composeapp"\} 1$/m);
    expect(text).toMatch(/^stack_backup_last_run_success\{stack="plainapp"\} 0$/m);
    expect(text).toMatch(/^stack_backup_last_success_timestamp_seconds\{stack="composeapp"\} \d{10}$/m);
    expect(text).not.toMatch(/stack_backup_last_success_timestamp_seconds\{stack="plainapp"\}/);
    expect(text).toMatch(/^stack_backup_downtime_seconds\{stack="composeapp"\} \d+(\.\d+)?$/m);
    expect(text).toMatch(/^stack_backup_last_run_outcome_known\{stack="composeapp"\} 0$/m);
  });
});

describe('doctor', () => {
  const unitDir = path.join(world.WORLD_HOME!, '.config', 'systemd', 'user');
  afterEach(async () => {
    await systemctl('disable', '--now', 'stack-backup.timer');
    rmSync(path.join(unitDir, 'stack-backup.service'), { force: true });
    rmSync(path.join(unitDir, 'stack-backup.timer'), { force: true });
    await systemctl('daemon-reload');
  });

  it('passes every check in a sound world once the timer is installed, and touches nothing', async () => {
    const before = await doctor();
    expect(before.code).toBe(1);
    expect(before.stdout).toMatch(/^FAIL  stack-backup\.timer is installed and enabled: .*stack-backup install/m);
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
    expect(result.stdout).toMatch(/^FAIL  Duplicati has job "plainap" of plainapp: no such job; Duplicati has: composeapp, plainapp, ondemand$/m);
    expect(result.stdout).toMatch(/^FAIL  unit gone-stack\.service exists: it is not-found/m);
    await systemctl('stop', world.DUPLICATI_UNIT!);
    result = await doctor();
    expect(result.stdout).toMatch(/^FAIL  the Duplicati container "duplicati" runs: it is (exited|missing|stopped)/m);
    expect(await unitState('composeapp-stack.service')).toBe('active');
  });

  async function doctor() {
    return cli(['doctor']);
  }
});
