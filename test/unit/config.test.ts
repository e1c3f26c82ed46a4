/**
 * Configuration: stacks/*.yaml and stack-backup.yaml written into a temp root, read through
 * src/config/load.ts. Every bad file must give a ConfigError naming the file and the key.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  listStackNames,
  loadGlobalConfig,
  loadStack,
  podmanSocketPath,
  resolveRoot,
  selectStacks,
} from '../../src/config/load.js';
import { AbortedError, ConfigError, LockHeldError, UsageError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/exit-codes.js';
import { removeTempRoots, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

/** A root holding stacks/<name>.yaml for each entry, plus optional other files. */
function rootWithStacks(stacks: Record<string, string>, other: Record<string, string> = {}): string {
  const files: Record<string, string> = { ...other };
  for (const [name, text] of Object.entries(stacks)) files[`stacks/${name}.yaml`] = text;
  return tempRoot(files);
}

function loadOne(text: string, name = 'x') {
  const root = rootWithStacks({ [name]: text });
  return loadStack(root, name, loadGlobalConfig(root, {}));
}

/** Loads stacks/x.yaml and returns the ConfigError it must throw. */
function configErrorOf(text: string): ConfigError {
  try {
    loadOne(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError, but the stack file loaded');
}

function usageErrorOf(action: () => unknown): UsageError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return error as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('stack file defaults', () => {
  it('fills in unit, project label, timeouts, restore policy, no freeze, empty hooks', () => {
    const stack = loadOne('duplicati_jobs: [cryptpad]\n', 'cryptpad');
    expect(stack.name).toBe('cryptpad');
    expect(stack.unit).toBe('cryptpad-stack.service');
    expect(stack.selector).toEqual({ key: 'io.podman.compose.project', value: 'cryptpad' });
    expect(stack.jobs).toEqual(['cryptpad']);
    expect(stack.stopTimeoutMs).toBe(120_000);
    expect(stack.startTimeoutMs).toBe(120_000);
    expect(stack.restorePolicy).toBe('previous');
    expect(stack.freeze).toBeUndefined();
    expect(stack.hookTimeoutMs).toBe(300_000);
    expect(Object.values(stack.hooks).every((commands) => commands.length === 0)).toBe(true);
    expect(Object.keys(stack.hooks).sort()).toEqual(
      ['post_backup', 'post_start', 'post_stop', 'pre_backup', 'pre_start', 'pre_stop', 'verify'].sort(),
    );
  });

  it('keeps the given values and turns seconds into milliseconds', () => {
    const stack = loadOne(
      [
        'duplicati_jobs: [nightly, 3]',
        'unit: my-app.service',
        'project_label: myproject',
        'stop_timeout: 30',
        'start_timeout: 2.5',
        'restore_policy: always',
        'hook_timeout: 10',
      ].join('\n'),
    );
    expect(stack.unit).toBe('my-app.service');
    expect(stack.selector).toEqual({ key: 'io.podman.compose.project', value: 'myproject' });
    expect(stack.jobs).toEqual(['nightly', '3']);
    expect(stack.stopTimeoutMs).toBe(30_000);
    expect(stack.startTimeoutMs).toBe(2500);
    expect(stack.restorePolicy).toBe('always');
    expect(stack.hookTimeoutMs).toBe(10_000);
  });

  it('normalises a hook given as one string or as a list into a list', () => {
    const stack = loadOne(
      ['duplicati_jobs: [a]', 'hooks:', '  pre_stop: ./hooks/maintenance on', '  post_start:', '    - ./hooks/maintenance off', '    - echo done'].join('\n'),
    );
    expect(stack.hooks.pre_stop).toEqual(['./hooks/maintenance on']);
    expect(stack.hooks.post_start).toEqual(['./hooks/maintenance off', 'echo done']);
    expect(stack.hooks.verify).toEqual([]);
  });

  it('container_label replaces the project selector', () => {
    const stack = loadOne('duplicati_jobs: [a]\ncontainer_label: PODMAN_SYSTEMD_UNIT=app.service\n');
    expect(stack.selector).toEqual({ key: 'PODMAN_SYSTEMD_UNIT', value: 'app.service' });
  });

  it('a container_label value may itself contain "="', () => {
    const stack = loadOne('duplicati_jobs: [a]\ncontainer_label: com.example/role=db=primary\n');
    expect(stack.selector).toEqual({ key: 'com.example/role', value: 'db=primary' });
  });

  it('freeze settings: socket and optional service', () => {
    const withService = loadOne(
      'duplicati_jobs: [a]\nfreeze_ondemand: true\nondemand_socket: app-proxy.socket\nondemand_service: app-proxy.service\n',
    );
    expect(withService.freeze).toEqual({ socket: 'app-proxy.socket', service: 'app-proxy.service' });
    const socketOnly = loadOne('duplicati_jobs: [a]\nfreeze_ondemand: true\nondemand_socket: app-proxy.socket\n');
    expect(socketOnly.freeze).toEqual({ socket: 'app-proxy.socket', service: undefined });
    const off = loadOne('duplicati_jobs: [a]\nfreeze_ondemand: false\nondemand_socket: app-proxy.socket\n');
    expect(off.freeze).toBeUndefined();
  });

  it('a stack without hook_timeout takes the global one', () => {
    const root = rootWithStacks({ x: 'duplicati_jobs: [a]\n' }, { 'stack-backup.yaml': 'hook_timeout: 42\n' });
    expect(loadStack(root, 'x', loadGlobalConfig(root, {})).hookTimeoutMs).toBe(42_000);
  });
});

describe('stack file errors name the file and the key', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['unknown top-level key', 'duplicati_jobs: [a]\nfoo: 1\n', 'foo', /unknown key \(allowed here: duplicati_jobs, unit, .*hooks, hook_timeout, snapshot, monitor, restore, restore_test\)/],
    ['unknown hook phase', 'duplicati_jobs: [a]\nhooks:\n  pre_stp: x\n', 'hooks.pre_stp', /unknown key \(allowed here: pre_stop, post_stop, pre_backup, post_backup, pre_start, post_start, verify\)/],
    ['timeout not a number', 'duplicati_jobs: [a]\nstop_timeout: abc\n', 'stop_timeout', /expected a number of seconds.*"abc"/],
    ['negative timeout', 'duplicati_jobs: [a]\nstop_timeout: -1\n', 'stop_timeout', /greater than 0/],
    ['zero timeout', 'duplicati_jobs: [a]\nstart_timeout: 0\n', 'start_timeout', /greater than 0/],
    ['zero hook timeout', 'duplicati_jobs: [a]\nhook_timeout: 0\n', 'hook_timeout', /greater than 0/],
    ['bad restore_policy', 'duplicati_jobs: [a]\nrestore_policy: sometimes\n', 'restore_policy', /expected "previous" or "always".*sometimes/],
    ['freeze_ondemand not a boolean', 'duplicati_jobs: [a]\nfreeze_ondemand: "yes"\n', 'freeze_ondemand', /expected true or false/],
    ['hook command not a string', 'duplicati_jobs: [a]\nhooks:\n  pre_stop: 5\n', 'hooks.pre_stop', /shell command/],
    ['hooks not a mapping', 'duplicati_jobs: [a]\nhooks: echo\n', 'hooks', /./],
    ['empty duplicati_jobs', 'duplicati_jobs: []\n', 'duplicati_jobs', /at least one/],
    ['missing duplicati_jobs', 'unit: a.service\n', 'duplicati_jobs', /required key is missing/],
    ['duplicati_jobs not a list', 'duplicati_jobs: app\n', 'duplicati_jobs', /list of Duplicati job/],
    ['negative job ID', 'duplicati_jobs: [-3]\n', 'duplicati_jobs[0]', /./],
    ['freeze_ondemand without ondemand_socket', 'duplicati_jobs: [a]\nfreeze_ondemand: true\n', 'ondemand_socket', /required key is missing/],
    ['both container_label and project_label', 'duplicati_jobs: [a]\ncontainer_label: A=b\nproject_label: x\n', 'container_label', /not both/],
    ['container_label without "="', 'duplicati_jobs: [a]\ncontainer_label: nolabel\n', 'container_label', /KEY=VALUE/],
    ['unit with the wrong suffix', 'duplicati_jobs: [a]\nunit: app.socket\n', 'unit', /ending in \.service/],
    ['ondemand_socket with the wrong suffix', 'duplicati_jobs: [a]\nfreeze_ondemand: true\nondemand_socket: a.service\n', 'ondemand_socket', /ending in \.socket/],
    ['ondemand_service with the wrong suffix', 'duplicati_jobs: [a]\nfreeze_ondemand: true\nondemand_socket: a.socket\nondemand_service: a.timer\n', 'ondemand_service', /ending in \.service/],
  ];
  it.each(cases)('%s', (_title, text, key, detail) => {
    const error = configErrorOf(text);
    expect(error.file).toBe(path.join('stacks', 'x.yaml'));
    expect(error.key).toBe(key);
    expect(error.message).toContain(`stacks/x.yaml: ${key}: `);
    expect(error.detail).toMatch(detail);
  });

  it('a YAML syntax error names the line', () => {
    const error = configErrorOf('duplicati_jobs:\n  - a\n - b\n');
    expect(error.message).toMatch(/^stacks\/x\.yaml: line 3, column \d+: YAML syntax error/);
  });

  it('a duplicate key is an error naming its line', () => {
    const error = configErrorOf('duplicati_jobs: [a]\nunit: a.service\nunit: b.service\n');
    expect(error.message).toMatch(/^stacks\/x\.yaml: line 3, column 1: .*unique/);
  });

  it.each([
    ['a list', '- a\n- b\n'],
    ['a scalar', 'hello\n'],
  ])('a top level that is %s is refused', (_title, text) => {
    const error = configErrorOf(text);
    expect(error.message).toBe('stacks/x.yaml: expected a mapping of keys to values at the top level');
  });

  it('an empty file reports the missing duplicati_jobs', () => {
    expect(configErrorOf('').message).toBe('stacks/x.yaml: duplicati_jobs: required key is missing');
  });

  it('several problems: the first is named and the others listed', () => {
    const error = configErrorOf('duplicati_jobs: []\nstop_timeout: 0\n');
    expect(error.key).toBe('duplicati_jobs');
    expect(error.message.split('\n')).toHaveLength(2);
    expect(error.message.split('\n')[1]).toMatch(/^stacks\/x\.yaml: stop_timeout: /);
  });
});

describe('stack-backup.yaml and the environment', () => {
  it('defaults when the file is missing', () => {
    const root = tempRoot();
    const global = loadGlobalConfig(root, {});
    expect(global.root).toBe(root);
    expect(global.duplicati).toEqual({
      driver: 'exec',
      url: 'http://127.0.0.1:8200',
      passwordFile: undefined,
      warningsFail: false,
      container: 'duplicati',
      serverUtil: 'duplicati-server-util',
      runTimeoutMs: 25_000,
      waitTimeoutMs: 21_600_000,
      pollIntervalMs: 5000,
      pausedTimeoutMs: 60_000,
    });
    expect(global.backupMount).toBeUndefined();
    expect(global.hookTimeoutMs).toBe(300_000);
  });

  it('reads every key of the file', () => {
    const root = tempRoot({
      'stack-backup.yaml': [
        'duplicati:',
        '  container: backup-server',
        '  server_util: /app/duplicati/duplicati-server-util',
        '  run_timeout: 10',
        '  wait_timeout: 3600',
        '  poll_interval: 2',
        '  paused_timeout: 30',
        '  driver: api',
        '  url: https://backup.example:8200',
        '  warnings_fail: true',
        'backup_mount: /mnt/backup',
        'hook_timeout: 60',
        'log_retention_days: 7',
        'metrics_file: /var/lib/node_exporter/textfile/stack_backup.prom',
        'monitor:',
        '  healthchecks: https://hc.example/ping/abc',
        '  webhook: https://ntfy.example/backups',
      ].join('\n'),
    });
    const global = loadGlobalConfig(root, { DUPLICATI_PASSWORD: 'secret' });
    expect(global.duplicati).toEqual({
      driver: 'api',
      url: 'https://backup.example:8200',
      passwordFile: undefined,
      warningsFail: true,
      container: 'backup-server',
      serverUtil: '/app/duplicati/duplicati-server-util',
      runTimeoutMs: 10_000,
      waitTimeoutMs: 3_600_000,
      pollIntervalMs: 2000,
      pausedTimeoutMs: 30_000,
    });
    expect(global.backupMount).toBe('/mnt/backup');
    expect(global.hookTimeoutMs).toBe(60_000);
    expect(global.logRetentionDays).toBe(7);
    expect(global.metricsFile).toBe('/var/lib/node_exporter/textfile/stack_backup.prom');
    expect(global.monitor).toEqual({ healthchecks: 'https://hc.example/ping/abc', webhook: 'https://ntfy.example/backups' });
  });

  it('environment variables override the file', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  container: from-file\n  run_timeout: 10\n  wait_timeout: 20\n' });
    const global = loadGlobalConfig(root, {
      DUPLICATI_CONTAINER: 'from-env',
      DUPLICATI_RUN_TIMEOUT: '7',
      DUPLICATI_WAIT_TIMEOUT: '1.5',
    });
    expect(global.duplicati.container).toBe('from-env');
    expect(global.duplicati.runTimeoutMs).toBe(7000);
    expect(global.duplicati.waitTimeoutMs).toBe(1500);
  });

  it('empty environment variables are ignored', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  container: from-file\n  run_timeout: 10\n' });
    const global = loadGlobalConfig(root, { DUPLICATI_CONTAINER: '', DUPLICATI_RUN_TIMEOUT: '' });
    expect(global.duplicati.container).toBe('from-file');
    expect(global.duplicati.runTimeoutMs).toBe(10_000);
  });

  it.each([
    ['DUPLICATI_RUN_TIMEOUT', 'soon'],
    ['DUPLICATI_RUN_TIMEOUT', '0'],
    ['DUPLICATI_WAIT_TIMEOUT', '-5'],
    ['DUPLICATI_WAIT_TIMEOUT', 'Infinity'],
  ])('a bad %s=%s is a ConfigError naming the variable', (name, value) => {
    const root = tempRoot();
    let caught: unknown;
    try {
      loadGlobalConfig(root, { [name]: value });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toContain(`environment variable ${name}`);
    expect((caught as Error).message).toContain(`"${value}"`);
  });

  it.each([
    ['duplicati:\n  contaner: x\n', 'duplicati.contaner', /unknown key \(allowed here: container, server_util, run_timeout, wait_timeout, poll_interval, driver, url, password_file, warnings_fail, paused_timeout\)/],
    ['dupliciti: 1\n', 'dupliciti', /unknown key \(allowed here: duplicati, backup_mount, hook_timeout, monitor, restore, restore_test, metrics_file, log_retention_days\)/],
    ['backup_mount: rel/path\n', 'backup_mount', /absolute path/],
    ['duplicati:\n  run_timeout: 0\n', 'duplicati.run_timeout', /greater than 0/],
    ['duplicati:\n  poll_interval: fast\n', 'duplicati.poll_interval', /number of seconds/],
  ])('bad stack-backup.yaml %j names the key', (text, key, detail) => {
    const root = tempRoot({ 'stack-backup.yaml': text });
    let caught: unknown;
    try {
      loadGlobalConfig(root, {});
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toContain(`stack-backup.yaml: ${key}: `);
    expect((caught as ConfigError).detail).toMatch(detail);
  });

  it('a YAML error in stack-backup.yaml names the file and line', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  container: a\n  container: b\n' });
    expect(() => loadGlobalConfig(root, {})).toThrow(/^stack-backup\.yaml: line 3/);
  });

  it('resolveRoot: option, else STACK_BACKUP_ROOT, else the current folder', () => {
    expect(resolveRoot('sub', { STACK_BACKUP_ROOT: '/env' }, '/cwd')).toBe('/cwd/sub');
    expect(resolveRoot(undefined, { STACK_BACKUP_ROOT: '/env' }, '/cwd')).toBe('/env');
    expect(resolveRoot(undefined, {}, '/cwd')).toBe('/cwd');
  });
});

describe('podman socket', () => {
  it('CONTAINER_HOST first, with or without unix://', () => {
    expect(podmanSocketPath({ CONTAINER_HOST: 'unix:///run/a.sock', DOCKER_HOST: 'unix:///run/b.sock', XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/a.sock');
    expect(podmanSocketPath({ CONTAINER_HOST: '/run/a.sock' })).toBe('/run/a.sock');
  });

  it('then DOCKER_HOST', () => {
    expect(podmanSocketPath({ DOCKER_HOST: 'unix:///run/b.sock', XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/b.sock');
  });

  it('then the rootless default under XDG_RUNTIME_DIR', () => {
    expect(podmanSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/user/1000/podman/podman.sock');
  });

  it('a non-unix CONTAINER_HOST is a ConfigError naming the variable', () => {
    expect(() => podmanSocketPath({ CONTAINER_HOST: 'tcp://host:2375' })).toThrow(ConfigError);
    expect(() => podmanSocketPath({ CONTAINER_HOST: 'tcp://host:2375' })).toThrow(/environment variable CONTAINER_HOST.*tcp:\/\/host:2375/);
  });

  it('nothing set is a ConfigError that says what to set', () => {
    expect(() => podmanSocketPath({})).toThrow(/CONTAINER_HOST, DOCKER_HOST or XDG_RUNTIME_DIR/);
  });
});

describe('choosing stacks', () => {
  const stacks = {
    nextcloud: 'duplicati_jobs: [nextcloud]\n',
    cryptpad: 'duplicati_jobs: [cryptpad]\n',
    wiki: 'duplicati_jobs: [wiki]\nunit: mediawiki.service\n',
    _template: 'this is: [not, a stack\n',
  };
  const setup = () => {
    const root = rootWithStacks(stacks);
    return { root, global: loadGlobalConfig(root, {}) };
  };
  const names = (list: Array<{ name: string }>) => list.map((stack) => stack.name);

  it('lists stacks in name order and ignores _template.yaml and other files', () => {
    const root = rootWithStacks(stacks, { 'stacks/README.md': '# notes\n', 'stacks/old.yaml.bak': 'x' });
    expect(listStackNames(root)).toEqual(['cryptpad', 'nextcloud', 'wiki']);
  });

  it('"all" is every stack in name order', () => {
    const { root, global } = setup();
    expect(names(selectStacks(root, global, ['all']))).toEqual(['cryptpad', 'nextcloud', 'wiki']);
  });

  it('"all" with no stacks is an empty list', () => {
    const root = tempRoot({ 'stacks/_template.yaml': 'duplicati_jobs: [a]\n' });
    expect(selectStacks(root, loadGlobalConfig(root, {}), ['all'])).toEqual([]);
  });

  it('named stacks keep the given order, once each', () => {
    const { root, global } = setup();
    expect(names(selectStacks(root, global, ['wiki', 'cryptpad', 'wiki']))).toEqual(['wiki', 'cryptpad']);
  });

  it('a unit name is accepted for the stack: cryptpad-stack.service -> cryptpad', () => {
    const { root, global } = setup();
    expect(names(selectStacks(root, global, ['cryptpad-stack.service', 'nextcloud']))).toEqual(['cryptpad', 'nextcloud']);
  });

  it('a custom unit: is found by its unit name', () => {
    const { root, global } = setup();
    const [stack] = selectStacks(root, global, ['mediawiki.service']);
    expect(stack?.name).toBe('wiki');
    expect(stack?.unit).toBe('mediawiki.service');
  });

  it.each(['../x', '.hidden', 'a/b', 'list', 'status', 'install', 'recover', 'doctor'])('rejects the name %j', (name) => {
    const { root, global } = setup();
    const error = usageErrorOf(() => selectStacks(root, global, [name]));
    expect(error.message).toContain(`"${name}"`);
  });

  it('rejects "all" mixed with names', () => {
    const { root, global } = setup();
    expect(usageErrorOf(() => selectStacks(root, global, ['all', 'wiki'])).message).toMatch(/"all" cannot be combined/);
    expect(usageErrorOf(() => selectStacks(root, global, ['wiki', 'all'])).message).toMatch(/"all" cannot be combined/);
  });

  it('a stack without a file is a UsageError naming stacks/<name>.yaml', () => {
    const { root, global } = setup();
    const error = usageErrorOf(() => selectStacks(root, global, ['ghost']));
    expect(error.message).toContain('stacks/ghost.yaml');
    const byUnit = usageErrorOf(() => selectStacks(root, global, ['ghost-stack.service']));
    expect(byUnit.message).toContain('stacks/ghost.yaml');
  });

  it('a bad stack file refuses the whole "all" run with a ConfigError naming it', () => {
    const root = rootWithStacks({ ...stacks, broken: 'duplicati_jobs: [a]\nrestore_policy: never\n' });
    expect(() => selectStacks(root, loadGlobalConfig(root, {}), ['all'])).toThrow(/^stacks\/broken\.yaml: restore_policy: /);
  });

  it('a missing stacks folder is a ConfigError naming its whole path (a wrong --root shows), and no errno code', () => {
    const root = tempRoot();
    expect(() => listStackNames(root)).toThrow(ConfigError);
    expect(() => listStackNames(root)).toThrow(`${root}/stacks: no such folder: is --root (or STACK_BACKUP_ROOT) right?`);
  });

  it('a stack file whose name is a command is a ConfigError naming the file', () => {
    const root = rootWithStacks({ ...stacks, list: 'duplicati_jobs: [a]\n' });
    expect(() => listStackNames(root)).toThrow(ConfigError);
    expect(() => listStackNames(root)).toThrow(/^stacks\/list\.yaml: /);
  });
});

describe('exit codes', () => {
  it.each([
    ['ConfigError', new ConfigError('stacks/x.yaml', 'unit', 'bad'), 2],
    ['UsageError', new UsageError('bad'), 2],
    ['LockHeldError', new LockHeldError('held'), 75],
    ['AbortedError SIGTERM', new AbortedError('SIGTERM'), 143],
    ['AbortedError SIGINT', new AbortedError('SIGINT'), 130],
    ['AbortedError SIGHUP', new AbortedError('SIGHUP'), 129],
    ['any other error', new Error('boom'), 1],
    ['a non-error', 'boom', 1],
  ])('%s -> %i', (_title, outcome, code) => {
    expect(exitCodeFor(outcome)).toBe(code);
  });
});
