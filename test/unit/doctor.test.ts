/**
 * src/host/doctor.ts: `stack-backup doctor` against the fakes (units, Podman, Duplicati) and a temp
 * root. Every check says OK, or what is wrong and how to fix it; a failed check does not hide
 * the others; and the doctor touches nothing: no unit is started or stopped, no job is run.
 */
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatChecks, runDoctor, type CheckResult, type DoctorDependencies } from '../../src/host/doctor.js';
import { TimeoutError } from '../../src/errors.js';
import { unitNames } from '../../src/host/install.js';
import { FakeWorld, removeTempRoots, tempRoot, worldWithStack } from '../fakes.js';

afterAll(removeTempRoots);

const socket = '/run/user/1000/podman/podman.sock';
/** This root's timer, stack-backup@<escaped root>.timer; set by doctor() for its temp root. */
let timer = 'stack-backup@-.timer';

interface Doctor {
  root: string;
  /** Installed unit files by name, as readUnitFile finds them. */
  unitFiles: Map<string, string>;
  world: FakeWorld;
  environment: Record<string, string | undefined>;
  /** Sockets createEngine was asked for. */
  sockets: string[];
  unreachable: Set<string>;
  run(targets?: string[]): Promise<CheckResult[]>;
}

/** A sound setup: stack app (job app, ID 1, unit active), the timer enabled, files mode 644. */
function doctor(files: Record<string, string> = {}): Doctor {
  const contents = { 'stack-backup.yaml': 'duplicati:\n  container: duplicati\n', 'stacks/app.yaml': 'duplicati_jobs: [app]\n', 'stacks/_template.yaml': 'duplicati_jobs: []\n', ...files };
  const root = tempRoot(contents);
  for (const name of Object.keys(contents)) chmodSync(path.join(root, name), 0o644);
  timer = unitNames(root).timer;
  const world = worldWithStack('active');
  world.duplicati.job('2', 'other');
  world.unit(timer, 'active', 'loaded', 'enabled');
  const environment: Record<string, string | undefined> = { XDG_RUNTIME_DIR: '/run/user/1000' };
  const sockets: string[] = [];
  const unreachable = new Set<string>();
  const unitFiles = new Map<string, string>();
  const dependencies: DoctorDependencies = {
    readUnitFile: (name) => unitFiles.get(name),
    environment,
    systemd: world.systemd,
    createEngine: (path) => {
      sockets.push(path);
      return world.engine;
    },
    createDuplicati: () => world.duplicati,
    snapshots: world.snapshots,
    checkFolder: async (folder) => {
      world.record(`check ${folder}`);
      if (unreachable.has(folder)) throw new TimeoutError(`${folder}: no answer within 30 s`);
    },
  };
  return {
    root,
    unitFiles,
    world,
    environment,
    sockets,
    unreachable,
    run: async (targets = []) => {
      const checks = await runDoctor(root, targets, dependencies);
      // Whatever it found, the doctor changed nothing.
      expect(world.actions.filter((action) => /^(start|stop|duplicati run|hook) /.test(action))).toEqual([]);
      return checks;
    },
  };
}

const failures = (checks: readonly CheckResult[]) => checks.filter((check) => !check.ok);
const failure = (checks: readonly CheckResult[], what: RegExp) => {
  const found = checks.filter((check) => !check.ok && what.test(check.what));
  expect(found, `one failed check matching ${what}`).toHaveLength(1);
  return found[0]!;
};
const passed = (checks: readonly CheckResult[]) => checks.filter((check) => check.ok).map((check) => check.what);

describe('runDoctor: a sound setup', () => {
  it('every check OK, in order', async () => {
    const { run, sockets } = doctor();
    const checks = await run();
    expect(failures(checks)).toEqual([]);
    expect(checks.map((check) => check.what)).toEqual([
      'stack-backup.yaml and the environment are valid',
      'stacks/app.yaml is valid',
      'only you can write the configuration, hooks and logs',
      `the Podman API answers at ${socket}`,
      'the Duplicati container "duplicati" runs',
      'Duplicati answers (driver exec)',
      "Duplicati's version is supported (driver exec)",
      'Duplicati lists its backup jobs (driver exec)',
      'Duplicati has job "app" of app (ID 1)',
      'unit app-stack.service exists (active)',
      'the containers of app are found: app-web (running), app-db (running), by io.podman.compose.project=app or PODMAN_SYSTEMD_UNIT=app-stack.service',
      `${timer} is installed and enabled`,
    ]);
    expect(sockets).toEqual([socket]);
  });

  it('backup_mount is read; freeze units are checked', async () => {
    const { run, world } = doctor({
      'stack-backup.yaml': 'backup_mount: /mnt/backup\n',
      'stacks/app.yaml': 'duplicati_jobs: [app]\nfreeze_ondemand: true\nondemand_socket: app-proxy.socket\nondemand_service: app-proxy.service\n',
    });
    world.unit('app-proxy.socket', 'active').unit('app-proxy.service', 'inactive');
    const checks = await run();
    expect(failures(checks)).toEqual([]);
    expect(passed(checks)).toEqual(
      expect.arrayContaining(['backup_mount /mnt/backup can be read', 'unit app-proxy.socket exists (active)', 'unit app-proxy.service exists (inactive)']),
    );
    expect(world.actions).toContain('check /mnt/backup');
  });

  it('$CONTAINER_HOST names the socket', async () => {
    const { run, environment, sockets } = doctor();
    environment.CONTAINER_HOST = 'unix:///tmp/podman-test.sock';
    const checks = await run();
    expect(sockets).toEqual(['/tmp/podman-test.sock']);
    expect(passed(checks)).toContain('the Podman API answers at /tmp/podman-test.sock');
  });

  it('named stacks: only those are checked', async () => {
    const { run, world } = doctor({ 'stacks/beta.yaml': 'duplicati_jobs: [beta]\n' });
    world.unit('beta-stack.service', 'active');
    world.container('beta-web', 'beta-stack.service', { 'io.podman.compose.project': 'beta' });
    world.duplicati.job('3', 'beta');
    const all = await run();
    expect(passed(all)).toEqual(expect.arrayContaining(['stacks/app.yaml is valid', 'stacks/beta.yaml is valid']));
    const some = await run(['beta']);
    expect(failures(some)).toEqual([]);
    expect(passed(some)).toContain('stacks/beta.yaml is valid');
    expect(passed(some).some((what) => what.includes('app'))).toBe(false);
  });
});

describe('runDoctor: each failure says what and how to fix it', () => {
  it('a bad stack file fails its check; the other checks still run', async () => {
    const { run } = doctor({ 'stacks/bad.yaml': 'duplicati_jobs: [bad]\nrestore_policy: sometimes\n' });
    const checks = await run();
    const bad = failure(checks, /stacks\/bad\.yaml/);
    expect(bad.what).toBe('stacks/bad.yaml is valid');
    expect(bad.problem).toContain('restore_policy');
    expect(bad.problem).toContain('stacks/_template.yaml');
    expect(failures(checks)).toHaveLength(1);
    expect(passed(checks)).toEqual(
      expect.arrayContaining(['stacks/app.yaml is valid', 'Duplicati answers (driver exec)', 'Duplicati has job "app" of app (ID 1)', 'unit app-stack.service exists (active)', `${timer} is installed and enabled`]),
    );
  });

  it('a bad stack-backup.yaml: named with its key, and nothing else is checked', async () => {
    const { run, world } = doctor({ 'stack-backup.yaml': 'duplicati:\n  driver: ftp\n' });
    const checks = await run();
    expect(checks).toHaveLength(1);
    expect(checks[0]!.ok).toBe(false);
    expect(checks[0]!.problem).toMatch(/stack-backup\.yaml: duplicati\.driver: .*; fix the key named/);
    expect(world.actions).toEqual([]);
  });

  it('an unknown job lists the jobs Duplicati has', async () => {
    const { run } = doctor({ 'stacks/app.yaml': 'duplicati_jobs: [app, nightly]\n' });
    const checks = await run();
    expect(passed(checks)).toContain('Duplicati has job "app" of app (ID 1)');
    const missing = failure(checks, /nightly/);
    expect(missing.what).toBe('Duplicati has job "nightly" of app');
    expect(missing.problem).toBe('no such job; Duplicati has: app, other');
  });

  it('a job given by ID is found by its ID', async () => {
    const { run } = doctor({ 'stacks/app.yaml': 'duplicati_jobs: [2]\n' });
    expect(passed(await run())).toContain('Duplicati has job "2" of app (ID 2)');
  });

  it('a missing unit: create it, or set unit in the stack file', async () => {
    const { run, world } = doctor();
    world.units.delete('app-stack.service');
    const checks = await run();
    const unit = failure(checks, /app-stack\.service/);
    expect(unit.what).toBe('unit app-stack.service exists');
    expect(unit.problem).toBe('it is not-found; create it, or set unit/ondemand_socket/ondemand_service in stacks/app.yaml');
    expect(failures(checks)).toHaveLength(1);
  });

  it('a paused server: resume it; the jobs are still checked', async () => {
    const { run, world } = doctor();
    world.duplicati.paused = true;
    const checks = await run();
    const paused = failure(checks, /^Duplicati answers/);
    expect(paused.problem).toMatch(/paused: resume it/);
    expect(passed(checks)).toContain('Duplicati has job "app" of app (ID 1)');
  });

  it('Duplicati not answering: its error; the units and timer are still checked', async () => {
    const { run, world } = doctor();
    world.duplicati.failStatus = 1;
    const checks = await run();
    expect(failure(checks, /^Duplicati answers/).problem).toContain('no such container');
    expect(passed(checks)).toEqual(expect.arrayContaining(['unit app-stack.service exists (active)', `${timer} is installed and enabled`]));
  });

  it('the Podman API not answering: start podman.socket; the container is not asked about', async () => {
    const { run, world } = doctor();
    world.failing.add('ping');
    const checks = await run();
    const podman = failure(checks, /Podman API/);
    expect(podman.what).toBe(`the Podman API answers at ${socket}`);
    expect(podman.problem).toContain('ping: failed (injected)');
    expect(podman.problem).toContain('systemctl --user enable --now podman.socket');
    expect(checks.some((check) => check.what.includes('Duplicati container'))).toBe(false);
    expect(passed(checks)).toContain('Duplicati answers (driver exec)');
  });

  it('no way to find the Podman API: say which variables to set', async () => {
    const { run, environment } = doctor();
    delete environment.XDG_RUNTIME_DIR;
    const checks = await run();
    expect(failure(checks, /Podman API/).problem).toMatch(/CONTAINER_HOST, DOCKER_HOST or XDG_RUNTIME_DIR/);
  });

  it('the Duplicati container not running: its state, start it or set duplicati.container', async () => {
    const { run, world } = doctor();
    world.containerStates.set('duplicati', 'exited');
    const checks = await run();
    const container = failure(checks, /Duplicati container/);
    expect(container.what).toBe('the Duplicati container "duplicati" runs');
    expect(container.problem).toBe('it is exited; start it, or set duplicati.container');
    expect(passed(checks)).toContain(`the Podman API answers at ${socket}`);
  });

  it('the timer missing: run stack-backup install', async () => {
    const { run, world } = doctor();
    world.units.delete(timer);
    const checks = await run();
    const missing = failure(checks, /timer/);
    expect(missing.problem).toBe('it is not-found; run: stack-backup install');
  });

  it('the timer loaded but not enabled: run stack-backup install', async () => {
    const { run, world } = doctor();
    world.unit(timer, 'inactive', 'loaded', 'disabled');
    const checks = await run();
    expect(failure(checks, /timer/).problem).toBe('it is loaded, disabled; run: stack-backup install');
  });

  it('a stack-backup.timer of an earlier version beside this root\'s timer: FAIL, install replaces it', async () => {
    const { run, world } = doctor();
    world.unit('stack-backup.timer', 'active', 'loaded', 'enabled');
    const checks = await run();
    expect(failure(checks, /earlier version/).problem).toBe(
      'it is enabled; run: stack-backup install (it replaces it), or: systemctl --user disable --now stack-backup.timer',
    );
  });

  it('an installed TimeoutStopSec= shorter than the configuration needs: WARN, exit code unchanged', async () => {
    const { run, root, unitFiles } = doctor({ 'stacks/app.yaml': 'duplicati_jobs: [app]\nstart_timeout: 3000\n' });
    unitFiles.set(unitNames(root).service, '[Service]\nTimeoutStopSec=15min\n');
    const checks = await run();
    const warning = checks.find((check) => check.warning)!;
    expect(warning.ok).toBe(true);
    // start_timeout 3000 s + 5 s slack + 17 s of monitoring + 60 s margin.
    expect(warning.problem).toBe('it allows 900 s, the configuration now needs 3082 s: run stack-backup install again');
    expect(formatChecks([warning])).toMatch(/^WARN {2}stack-backup@.*\.service gives the undos enough time to stop/);
    unitFiles.set(unitNames(root).service, '[Service]\nTimeoutStopSec=3082s\n');
    expect((await run()).some((check) => check.warning)).toBe(false);
  });

  it('a stack file others can write: chmod go-w', async () => {
    const { run, root } = doctor();
    chmodSync(path.join(root, 'stacks/app.yaml'), 0o666);
    const checks = await run();
    const loose = failure(checks, /only you can write/);
    expect(loose.problem).toContain('stacks/app.yaml');
    expect(loose.problem).toContain(`chmod go-w ${path.join(root, 'stacks/app.yaml')}`);
  });

  it('backup_mount unreachable: mount it or fix backup_mount', async () => {
    const { run, unreachable } = doctor({ 'stack-backup.yaml': 'backup_mount: /mnt/backup\n' });
    unreachable.add('/mnt/backup');
    const checks = await run();
    const mount = failure(checks, /backup_mount/);
    expect(mount.problem).toContain('no answer within 30 s');
    expect(mount.problem).toContain('mount it or fix backup_mount');
  });

  it('driver api without a password: the config check names duplicati.password_file', async () => {
    const { run } = doctor({ 'stack-backup.yaml': 'duplicati:\n  driver: api\n' });
    const checks = await run();
    expect(checks).toHaveLength(1);
    expect(checks[0]!.problem).toContain('duplicati.password_file');
  });
});

describe('formatChecks', () => {
  it('"OK    what" and "FAIL  what: problem", one line each', () => {
    expect(
      formatChecks([
        { ok: true, what: 'stacks/app.yaml is valid' },
        { ok: false, what: `${timer} is installed and enabled`, problem: 'it is not-found; run: stack-backup install' },
      ]),
    ).toBe(`OK    stacks/app.yaml is valid\nFAIL  ${timer} is installed and enabled: it is not-found; run: stack-backup install\n`);
  });

  it('formats a real report', async () => {
    const { run, world } = doctor();
    world.units.delete(timer);
    const lines = formatChecks(await run()).trimEnd().split('\n');
    expect(lines[0]).toBe('OK    stack-backup.yaml and the environment are valid');
    expect(lines.at(-1)).toBe(`FAIL  ${timer} is installed and enabled: it is not-found; run: stack-backup install`);
    expect(lines.every((line) => /^(OK {4}|FAIL {2})\S/.test(line))).toBe(true);
  });
});

describe('runDoctor: the Duplicati version', () => {
  it('a server older than the driver supports: refused, naming the lowest version', async () => {
    const { run, world } = doctor();
    world.duplicati.serverVersion = '2.0.8.1_beta_2024-05-07';
    const checks = await run();
    const version = checks.find((check) => check.what === "Duplicati's version is supported (driver exec)")!;
    expect(version.problem).toBe('Duplicati 2.0.8.1_beta_2024-05-07 is older than 2.1.0.5, the lowest version the exec driver supports; update Duplicati');
  });
});

describe('doctor, snapshot mode', () => {
  const stack = 'duplicati_jobs: [app]\nsnapshot:\n  paths:\n    - {source: /srv/app/data, target: /srv/snapshots/app/data}\n';
  function snapshotDoctor(): Doctor {
    const setup = doctor({ 'stacks/app.yaml': stack });
    setup.world.snapshots.source('/srv/app/data', { fsType: 'btrfs', inode: 256, mount: '/srv' });
    // The snapshots' folder to read them, the data's folder (writable) to stage a restore beside it.
    setup.world.containerMounts.set('duplicati', [
      { source: '/srv/snapshots', destination: '/snapshots' },
      { source: '/srv/app', destination: '/restore/app', writable: true },
    ]);
    return setup;
  }

  it('a sound path: it can be snapshotted, the container sees the target, and the doctor says where the job must read', async () => {
    const checks = await snapshotDoctor().run();
    expect(failures(checks)).toEqual([]);
    expect(checks.map((check) => check.what)).toContain('stacks/app.yaml snapshot.paths[0]: /srv/app/data can be snapshotted to /srv/snapshots/app/data (driver auto)');
    expect(checks.some((check) => check.ok && /can see \/srv\/snapshots\/app\/data, at \/snapshots\/app\/data: the job of app must back up that path/.test(check.what))).toBe(true);
  });

  it('a source on ext4 or tmpfs fails, saying why', async () => {
    for (const fsType of ['ext2/ext3', 'tmpfs']) {
      const setup = snapshotDoctor();
      setup.world.snapshots.source('/srv/app/data', { fsType, inode: 12, mount: '/srv' });
      const problem = failure(await setup.run(), /can be snapshotted/).problem!;
      expect(problem).toMatch(/cannot share blocks/);
      expect(problem).toMatch(/auto chose reflink/);
    }
  });

  it('a target the Duplicati container cannot see fails; so does a volume of the target itself', async () => {
    const hidden = snapshotDoctor();
    hidden.world.containerMounts.set('duplicati', [{ source: '/srv/other', destination: '/source' }]);
    expect(failure(await hidden.run(), /can see/).problem).toMatch(/none of its volumes covers \/srv\/snapshots\/app/);
    const itself = snapshotDoctor();
    itself.world.containerMounts.set('duplicati', [{ source: '/srv/snapshots/app/data', destination: '/data' }]);
    expect(failure(await itself.run(), /can see/).problem).toMatch(/the target itself .* never the next one/);
  });

  it('api driver: a job whose sources miss the snapshot fails (it would back up the live data)', async () => {
    const setup = snapshotDoctor();
    setup.world.duplicati.useTaskApi();
    setup.world.duplicati.sources.set('1', ['/source/app/']);
    expect(failure(await setup.run(), /backs up the snapshot/).problem).toMatch(/set its source to \/snapshots\/app\/data\//);
    setup.world.duplicati.sources.set('1', ['/snapshots/app/data/']);
    expect(failures(await setup.run())).toEqual([]);
  });

  it('a restore that could not be staged beside the data (no writable volume of its folder) fails, naming the volume to add', async () => {
    const setup = snapshotDoctor();
    setup.world.duplicati.useTaskApi();
    setup.world.duplicati.sources.set('1', ['/snapshots/app/data/']);
    setup.world.containerMounts.set('duplicati', [{ source: '/srv/snapshots', destination: '/snapshots' }]);
    expect(failure(await setup.run(), /a restore of app can be staged/).problem).toMatch(/cannot write beside \/srv\/app\/data, where its restore is staged: add a writable volume of its folder, e\.g\. -v \/srv\/app:/);
  });
});

describe('runDoctor: a Quadlet stack (issue 29)', () => {
  /** A pod as Quadlet makes it: the pod's service, two member units, their containers labelled with their units. */
  function quadletPod(stackFile: string) {
    const setup = doctor({ 'stacks/site.yaml': stackFile });
    const { world } = setup;
    world.unit('site-pod.service', 'active').unit('site-web.service', 'active').unit('site-db.service', 'active');
    world.duplicati.job('3', 'site');
    world.unitGraphs.set('site-pod.service', [
      { unit: 'site-pod.service', activeState: 'active', quadlet: true, sourcePath: '/home/u/.config/containers/systemd/site.pod' },
      { unit: 'site-web.service', activeState: 'active', quadlet: true, sourcePath: '/home/u/.config/containers/systemd/site-web.container' },
      { unit: 'site-db.service', activeState: 'active', quadlet: true, sourcePath: '/home/u/.config/containers/systemd/site-db.container' },
    ]);
    world.container('systemd-site-web', 'site-web.service', { PODMAN_SYSTEMD_UNIT: 'site-web.service' });
    world.container('systemd-site-db', 'site-db.service', { PODMAN_SYSTEMD_UNIT: 'site-db.service' });
    world.containerMounts.set('systemd-site-db', [{ source: '/home/u/.local/share/containers/storage/volumes/site-db/_data', destination: '/var/lib/db', writable: true }]);
    world.containerMounts.set('systemd-site-web', [
      { source: '/srv/site/uploads', destination: '/uploads', writable: true },
      { source: '/srv/site/config', destination: '/config', writable: false },
    ]);
    return setup;
  }

  it('lists its units with their Quadlet files, its containers, and the folders its job must back up (a .volume included)', async () => {
    const { run } = quadletPod('unit: site-pod.service\nduplicati_jobs: [site]\n');
    const checks = await run(['site']);
    expect(failures(checks)).toEqual([]);
    expect(passed(checks)).toEqual(
      expect.arrayContaining([
        'units of site: site-pod.service (active, from site.pod), site-web.service (active, from site-web.container), site-db.service (active, from site-db.container)',
        'the containers of site are found: systemd-site-web (running), systemd-site-db (running), by io.podman.compose.project=site or PODMAN_SYSTEMD_UNIT=site-pod.service or PODMAN_SYSTEMD_UNIT=site-web.service or PODMAN_SYSTEMD_UNIT=site-db.service',
        'site keeps its data in (its Duplicati job must back up): /home/u/.local/share/containers/storage/volumes/site-db/_data, /srv/site/uploads',
      ]),
    );
  });

  it('a hand-set label that matches nothing while the pod runs: FAIL, naming the containers that run under it', async () => {
    const { run } = quadletPod('unit: site-pod.service\nduplicati_jobs: [site]\ncontainer_label: PODMAN_SYSTEMD_UNIT=site-wbe.service\n');
    const checks = await run(['site']);
    expect(checks.find((check) => check.what === 'the containers of site are found')?.problem).toBe(
      'site-pod.service is active but no container matches PODMAN_SYSTEMD_UNIT=site-wbe.service, so a run is refused before the stop; ' +
        'under the unit run systemd-site-web, systemd-site-db: remove project_label/container_label from stacks/site.yaml (its units find them), or set it to a label they carry',
    );
  });
});
