/**
 * The real adapters on their own, against the real world: systemd --user, the Podman API, the
 * process runner, the lock and the folder check, each called as the world's user from the
 * installed app. The unit tests fake these; here is where the fakes' promises are checked.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { asUser, resetRoot, resetWorld, root, unitState, world } from './world.js';

const app = path.dirname(world.WORLD_CLI!);

/** Runs an async function body as the world's user with the app's modules at hand; returns its JSON result. */
async function asApp(body: string): Promise<unknown> {
  const script = [
    `const app = ${JSON.stringify(app)};`,
    `const load = (module) => import(app + '/' + module);`,
    `const result = await (async () => { ${body} })();`,
    `process.stdout.write(JSON.stringify(result ?? null));`,
    // The adapters may hold sockets open; the answer is out.
    `process.exit(0);`,
  ].join('\n');
  const finished = await asUser([process.execPath, '--input-type=module', '-e', script]);
  if (finished.code !== 0) throw new Error(`exit ${finished.code}: ${finished.stderr}`);
  return JSON.parse(finished.stdout) as unknown;
}

const leftover = async (pattern: string) => (await asUser(['pgrep', '-u', world.WORLD_USER!, '-f', pattern])).stdout.trim();

beforeAll(async () => {
  resetRoot();
  await resetWorld();
});

describe('systemd adapter (systemctl --user)', () => {
  it('reads LoadState and ActiveState; a missing unit is not-found', async () => {
    const states = await asApp(`
      const { createSystemd } = await load('adapters/systemd.js');
      const { runCommand } = await load('adapters/process.js');
      const systemd = createSystemd(runCommand);
      return [await systemd.state('plainapp-stack.service'), await systemd.state('no-such-unit.service')];
    `);
    expect(states).toMatchObject([
      { load: 'loaded', active: 'active' },
      { load: 'not-found', active: 'inactive' },
    ]);
  });

  it('stops and starts a unit, and a start of a missing unit is an error naming it', async () => {
    const outcome = await asApp(`
      const { createSystemd } = await load('adapters/systemd.js');
      const { runCommand } = await load('adapters/process.js');
      const systemd = createSystemd(runCommand);
      await systemd.stop('plainapp-stack.service', 60000);
      const stopped = (await systemd.state('plainapp-stack.service')).active;
      await systemd.start('plainapp-stack.service', 60000);
      const started = (await systemd.state('plainapp-stack.service')).active;
      const missing = await systemd.start('no-such-unit.service', 15000).then(() => 'started', (error) => error.message);
      return { stopped, started, missing };
    `);
    expect(outcome).toMatchObject({ stopped: 'inactive', started: 'active' });
    expect((outcome as { missing: string }).missing).toMatch(/systemctl --user start -- no-such-unit.service: exit \d+.*not found/i);
    expect(await unitState('plainapp-stack.service')).toBe('active');
  });
});

describe('Podman adapter (the API socket)', () => {
  it('pings, finds the Duplicati container running, and lists a stack\'s containers by label', async () => {
    const outcome = await asApp(`
      const { createContainerEngine } = await load('adapters/podman.js');
      const { podmanSocketPath } = await load('config/load.js');
      const engine = createContainerEngine(podmanSocketPath(process.env));
      await engine.ping();
      const duplicati = await engine.containerState(${JSON.stringify(world.DUPLICATI_CONTAINER)});
      const missing = await engine.containerState('no-such-container');
      const containers = await engine.containers([{ key: 'io.podman.compose.project', value: 'composeapp' }]);
      // Quadlet's label with two values (one request by key, the values matched on the answer),
      // and a pod's service, whose infra container brings the pod's other containers (pod filter).
      const group = await engine.containers([{ key: 'PODMAN_SYSTEMD_UNIT', value: 'quadgroup-web.service' }, { key: 'PODMAN_SYSTEMD_UNIT', value: 'quadgroup-worker.service' }]);
      const pod = await engine.containers([{ key: 'PODMAN_SYSTEMD_UNIT', value: 'quadpod-pod.service' }]);
      return { duplicati, missing, states: containers.map((container) => container.state), group: group.map((container) => container.name).sort(), pod: pod.map((container) => container.name).sort() };
    `);
    expect(outcome).toMatchObject({ group: ['systemd-quadgroup-web', 'systemd-quadgroup-worker'], pod: ['quadpod-infra', 'systemd-quadpod-web', 'systemd-quadpod-worker'] });
    expect(outcome).toMatchObject({ duplicati: 'running' });
    expect((outcome as { missing: string }).missing).not.toBe('running');
    const states = (outcome as { states: string[] }).states;
    expect(states.length).toBeGreaterThan(0);
    expect(states.every((state) => state === 'running')).toBe(true);
  });
});

describe('process runner', () => {
  it('a timeout ends the whole process group, children included', async () => {
    const outcome = await asApp(`
      const { runCommand } = await load('adapters/process.js');
      const result = await runCommand(['/bin/sh', '-c', 'sleep 611 & sleep 612'], { timeoutMs: 500, killGraceMs: 500 });
      return { timedOut: result.timedOut, exitCode: result.exitCode ?? null };
    `);
    expect(outcome).toEqual({ timedOut: true, exitCode: null });
    expect(await leftover('sleep 61[12]')).toBe('');
  });

  it('an abort ends the group and rejects with the abort reason', async () => {
    const outcome = await asApp(`
      const { runCommand } = await load('adapters/process.js');
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('stop now')), 300);
      return runCommand(['/bin/sh', '-c', 'sleep 613 & sleep 614'], { timeoutMs: 60000, signal: controller.signal }).then(
        () => 'finished',
        (error) => error.message,
      );
    `);
    expect(outcome).toBe('stop now');
    expect(await leftover('sleep 61[34]')).toBe('');
  });

  it('a non-zero exit is a result with its output, not an exception', async () => {
    const outcome = await asApp(`
      const { runCommand } = await load('adapters/process.js');
      const result = await runCommand(['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 10000 });
      return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
    `);
    expect(outcome).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
  });
});

describe('root lock', () => {
  it('a second holder is refused while the first lives; after release it is free again', async () => {
    const outcome = await asApp(`
      const { acquireRootLock, isRootLocked } = await load('adapters/lock.js');
      const root = ${JSON.stringify(root)};
      const release = await acquireRootLock(root, () => {});
      const second = await acquireRootLock(root, () => {}).then(() => 'acquired', (error) => error.name);
      const lockedWhileHeld = await isRootLocked(root);
      await release();
      const again = await acquireRootLock(root, () => {});
      await again();
      return { second, lockedWhileHeld, lockedAfter: await isRootLocked(root) };
    `);
    expect(outcome).toEqual({ second: 'LockHeldError', lockedWhileHeld: true, lockedAfter: false });
  });
});

describe('folder check', () => {
  it('a readable folder passes; a missing one fails with the reason', async () => {
    const outcome = await asApp(`
      const { checkFolder } = await load('adapters/files.js');
      const good = await checkFolder(${JSON.stringify(root)}, 10000).then(() => 'ok', (error) => error.message);
      const bad = await checkFolder('/no/such/folder', 10000).then(() => 'ok', (error) => error.message);
      return { good, bad };
    `);
    expect(outcome).toMatchObject({ good: 'ok' });
    expect((outcome as { bad: string }).bad).toMatch(/ENOENT/);
  });
});
