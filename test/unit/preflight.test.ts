/**
 * src/steps/preflight.ts through whole stack runs: the Podman API, the Duplicati container,
 * the stack's units and backup_mount are checked before anything is touched. Each failure fails
 * the stack with "preflight: ...; nothing was touched", and no unit is stopped or started.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GlobalConfig, StackConfig } from '../../src/config/types.js';
import { exitCodes } from '../../src/exit-codes.js';
import { readHistory } from '../../src/report/history.js';
import { createJournal } from '../../src/journal/journal.js';
import { createProgress } from '../../src/report/report.js';
import { runBackups } from '../../src/backup/run.js';
import { FakeWorld, addStack, globalConfig, hooks, removeTempRoots, runStack, stackConfig, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const unit = 'app-stack.service';

/** A stack with hooks and a frozen on-demand socket: plenty that preflight must not touch. */
const stack = (overrides: Partial<StackConfig> = {}) =>
  stackConfig({
    hooks: hooks({ pre_stop: ['maintenance on'], post_start: ['maintenance off'], verify: ['curl health'] }),
    freeze: { socket: 'app-proxy.socket', service: 'app-proxy.service' },
    ...overrides,
  });

const world = (unitState = 'active') => worldWithStack(unitState).unit('app-proxy.socket', 'active').unit('app-proxy.service', 'inactive');

/** Runs the stack and checks that it failed in preflight with nothing touched. */
async function expectRefused(fake: FakeWorld, message: RegExp, options: { stack?: StackConfig; global?: GlobalConfig } = {}) {
  const before = new Map([...fake.units].map(([name, state]) => [name, state.active]));
  const { result, log } = await runStack(fake, options.stack ?? stack(), { global: options.global });
  expect(result.ok).toBe(false);
  expect(result.error).toMatch(/^preflight: /);
  expect(result.error).toMatch(/; nothing was touched$/);
  expect(result.error).toMatch(message);
  expect(result).toMatchObject({ restoreErrors: [], notRestored: false, aborted: false, downtimeMs: undefined, backupMs: undefined });
  // Nothing stopped, started, run or hooked.
  expect(fake.actions.filter((action) => /^(stop|start|hook|duplicati run) /.test(action))).toEqual([]);
  expect(fake.hookRuns).toEqual([]);
  expect(fake.duplicati.tasks).toEqual([]);
  expect(new Map([...fake.units].map(([name, state]) => [name, state.active]))).toEqual(before);
  expect(log.messages('error').some((line) => line.includes('failed: preflight: '))).toBe(true);
  return { result, log };
}

describe('preflight: the Podman API and the Duplicati container', () => {
  it('a Podman API that does not answer fails the stack and says how to start it', async () => {
    const fake = world();
    fake.failing.add('ping');
    await expectRefused(fake, /the Podman API does not answer \(ping: failed \(injected\)\); is podman\.socket running\? \(systemctl --user start podman\.socket\)/);
    expect(fake.state(unit)).toBe('active');
  });

  it('a Duplicati container that is not running fails the stack, naming its state', async () => {
    const fake = world();
    fake.containerStates.set('duplicati', 'exited');
    await expectRefused(fake, /the Duplicati container "duplicati" is not running \(exited\)/);
  });

  it('a missing Duplicati container fails the stack', async () => {
    const fake = world();
    fake.containerStates.delete('duplicati');
    await expectRefused(fake, /the Duplicati container "duplicati" is not running \(missing\)/);
  });

  it('checks the container named in the configuration', async () => {
    const fake = world();
    fake.containerStates.set('backup-server', 'running');
    const global = globalConfig({ duplicati: { ...globalConfig().duplicati, container: 'backup-server' } });
    fake.containerStates.delete('duplicati');
    const { result } = await runStack(fake, stack(), { global });
    expect(result.ok).toBe(true);
    const paused = world();
    paused.containerStates.set('backup-server', 'paused');
    await expectRefused(paused, /the Duplicati container "backup-server" is not running \(paused\)/, { global });
  });

  it('a Podman API error while asking for the container fails the stack, nothing touched', async () => {
    const fake = world();
    fake.failing.add('containerState');
    await expectRefused(fake, /containerState: failed \(injected\)/);
  });
});

describe('preflight: the stack\'s units', () => {
  it('a stack unit with LoadState not-found fails the stack', async () => {
    const fake = world();
    fake.unit(unit, 'inactive', 'not-found');
    await expectRefused(fake, /unit app-stack\.service is not-found \(LoadState\), so it cannot be stopped and started again/);
  });

  it('a stack unit systemd does not know at all fails the stack', async () => {
    const fake = world();
    fake.units.delete(unit);
    await expectRefused(fake, /unit app-stack\.service is not-found \(LoadState\)/);
  });

  it('a masked stack unit fails the stack', async () => {
    const fake = world();
    fake.unit(unit, 'inactive', 'masked');
    await expectRefused(fake, /unit app-stack\.service is masked \(LoadState\)/);
  });

  it('a freeze socket that does not exist fails the stack before the service is touched', async () => {
    const fake = world();
    fake.units.delete('app-proxy.socket');
    await expectRefused(fake, /unit app-proxy\.socket is not-found \(LoadState\)/);
    expect(fake.state(unit)).toBe('active');
    expect(fake.state('app-proxy.service')).toBe('inactive');
  });

  it('a freeze service with LoadState not-found fails the stack; the socket stays active', async () => {
    const fake = world();
    fake.unit('app-proxy.service', 'inactive', 'not-found');
    await expectRefused(fake, /unit app-proxy\.service is not-found \(LoadState\)/);
    expect(fake.state('app-proxy.socket')).toBe('active');
  });

  it('a freeze without a service only needs the socket', async () => {
    const fake = worldWithStack('active').unit('app-proxy.socket', 'active');
    const { result } = await runStack(fake, stack({ freeze: { socket: 'app-proxy.socket', service: undefined } }));
    expect(result.ok).toBe(true);
  });

  it('a stopped but loaded unit passes: preflight is about existence, not state', async () => {
    const fake = world('inactive');
    const { result } = await runStack(fake, stack());
    expect(result.ok).toBe(true);
    expect(fake.state(unit)).toBe('inactive');
  });
});

describe('preflight: backup_mount', () => {
  it('an unreachable backup_mount fails the stack, naming it', async () => {
    const fake = world();
    fake.unreachableFolders.add('/mnt/backup');
    await expectRefused(fake, /backup_mount \/mnt\/backup is not reachable: no answer within 30 s/, { global: globalConfig({ backupMount: '/mnt/backup' }) });
    expect(fake.actions).toContain('check /mnt/backup');
  });

  it('a reachable backup_mount is read before the stack is touched', async () => {
    const fake = world();
    const { result } = await runStack(fake, stack(), { global: globalConfig({ backupMount: '/mnt/backup' }) });
    expect(result.ok).toBe(true);
    const check = fake.actions.indexOf('check /mnt/backup');
    expect(check).toBeGreaterThanOrEqual(0);
    expect(check).toBeLessThan(fake.actions.indexOf('hook pre_stop: maintenance on'));
  });
});

describe('preflight in a run over several stacks', () => {
  it('a stack refused by preflight is reported, leaves no journal entry, and the next stack still runs', async () => {
    const root = tempRoot();
    const fake = addStack(addStack(new FakeWorld(), 'alpha'), 'beta');
    fake.units.delete('alpha-stack.service');
    const output: string[] = [];
    const report = await runBackups({
      global: globalConfig({ root }),
      stacks: [stackConfig({ name: 'alpha', hooks: hooks({ pre_stop: ['alpha maintenance on'] }) }), stackConfig({ name: 'beta' })],
      adapters: fake.adapters(),
      progress: createProgress({ write: () => {} }, fake.clock),
      output: { write: (text) => output.push(text) },
      signal: new AbortController().signal,
    });
    expect(report.results.map((result) => [result.stack, result.ok])).toEqual([
      ['alpha', false],
      ['beta', true],
    ]);
    expect(fake.actions.filter((action) => action.includes('alpha'))).toEqual([]);
    const line = output.join('').split('\n').find((text) => text.startsWith('alpha '));
    expect(line).toMatch(/^alpha\s+FAILED\s+.*preflight: unit alpha-stack\.service is not-found \(LoadState\).*nothing was touched/);
    expect(createJournal(root, 'reader').pending()).toEqual([]);
    expect(readHistory(root).find((entry) => entry.stack === 'alpha')).toMatchObject({ result: 'failed', notRestored: false });
    const code = report.results.every((result) => result.ok) ? exitCodes.success : exitCodes.stackFailed;
    expect(code).toBe(exitCodes.stackFailed);
    expect(path.isAbsolute(report.results[0]!.logFile)).toBe(true);
  });
});

describe('preflight: the Duplicati version (api driver)', () => {
  const api = () => globalConfig({ duplicati: { ...globalConfig().duplicati, driver: 'api' } });

  it('a server older than the api driver supports: refused before anything is touched, naming the lowest version', async () => {
    const fake = world();
    fake.duplicati.serverVersion = '2.1.0.5_stable_2025-03-04';
    await expectRefused(fake, /Duplicati 2\.1\.0\.5_stable_2025-03-04 is older than 2\.2\.0\.0, the lowest version the api driver supports; update Duplicati or use duplicati\.driver: exec/, { global: api() });
  });

  it('a supported server passes; the exec driver leaves the version to doctor', async () => {
    const fake = world();
    const { result } = await runStack(fake, stack(), { global: api() });
    expect(result.ok).toBe(true);
    const old = world();
    old.duplicati.serverVersion = '2.1.0.5_stable_2025-03-04';
    expect((await runStack(old, stack())).result.ok).toBe(true);
  });
});
