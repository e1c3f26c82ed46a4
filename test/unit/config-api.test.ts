/**
 * Configuration of the api driver's password, monitoring and the metrics file
 * (src/config/load.ts): each mistake is a ConfigError naming the file and the key, and says
 * how to fix it.
 */
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadGlobalConfig, loadStack } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { removeTempRoots, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

function configError(action: () => unknown): ConfigError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('driver api: where the password comes from', () => {
  it('neither DUPLICATI_PASSWORD nor password_file: ConfigError naming duplicati.password_file', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  driver: api\n' });
    const error = configError(() => loadGlobalConfig(root, {}));
    expect(error.file).toBe('stack-backup.yaml');
    expect(error.key).toBe('duplicati.password_file');
    expect(error.message).toMatch(/^stack-backup\.yaml: duplicati\.password_file: .*DUPLICATI_PASSWORD/);
  });

  it('an empty DUPLICATI_PASSWORD counts as unset', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  driver: api\n' });
    expect(configError(() => loadGlobalConfig(root, { DUPLICATI_PASSWORD: '' })).key).toBe('duplicati.password_file');
  });

  it('DUPLICATI_PASSWORD set: loads, and the password is not kept in the config', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  driver: api\n  url: http://duplicati.local:8200\n' });
    const global = loadGlobalConfig(root, { DUPLICATI_PASSWORD: 'hunter2' });
    expect(global.duplicati).toMatchObject({ driver: 'api', url: 'http://duplicati.local:8200', passwordFile: undefined, warningsFail: false });
    expect(JSON.stringify(global)).not.toContain('hunter2');
  });

  it('password_file missing: ConfigError naming the file', () => {
    const root = tempRoot();
    const missing = path.join(root, 'nowhere.password');
    const withConfig = tempRoot({ 'stack-backup.yaml': `duplicati:\n  driver: api\n  password_file: ${missing}\n` });
    const error = configError(() => loadGlobalConfig(withConfig, {}));
    expect(error.key).toBe('duplicati.password_file');
    expect(error.message).toContain(missing);
    expect(error.message).toContain('ENOENT');
  });

  it.each([0o644, 0o640, 0o604])('password_file with mode %o: ConfigError saying chmod 600', (mode) => {
    const secrets = tempRoot({ 'duplicati.password': 'hunter2\n' });
    const file = path.join(secrets, 'duplicati.password');
    chmodSync(file, mode);
    const root = tempRoot({ 'stack-backup.yaml': `duplicati:\n  driver: api\n  password_file: ${file}\n` });
    const error = configError(() => loadGlobalConfig(root, {}));
    expect(error.key).toBe('duplicati.password_file');
    expect(error.message).toContain(`chmod 600 ${file}`);
    expect(error.message).toContain(mode.toString(8));
    expect(error.message).not.toContain('hunter2');
  });

  it.each([0o600, 0o400])('password_file with mode %o: loads', (mode) => {
    const secrets = tempRoot({ 'duplicati.password': 'hunter2\n' });
    const file = path.join(secrets, 'duplicati.password');
    chmodSync(file, mode);
    const root = tempRoot({ 'stack-backup.yaml': `duplicati:\n  driver: api\n  password_file: ${file}\n  warnings_fail: true\n` });
    const global = loadGlobalConfig(root, {});
    expect(global.duplicati).toMatchObject({ driver: 'api', passwordFile: file, warningsFail: true, url: 'http://127.0.0.1:8200' });
    expect(JSON.stringify(global)).not.toContain('hunter2');
  });

  it('DUPLICATI_PASSWORD set: a loose password_file is not read or checked', () => {
    const secrets = tempRoot({ 'duplicati.password': 'hunter2\n' });
    const file = path.join(secrets, 'duplicati.password');
    chmodSync(file, 0o644);
    const root = tempRoot({ 'stack-backup.yaml': `duplicati:\n  driver: api\n  password_file: ${file}\n` });
    expect(loadGlobalConfig(root, { DUPLICATI_PASSWORD: 'hunter2' }).duplicati.driver).toBe('api');
  });

  it('password_file must be absolute', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'duplicati:\n  driver: api\n  password_file: secrets/duplicati.password\n' });
    const error = configError(() => loadGlobalConfig(root, { DUPLICATI_PASSWORD: 'x' }));
    expect(error.key).toBe('duplicati.password_file');
    expect(error.message).toMatch(/absolute path/);
  });

  it('driver exec (the default) needs no password', () => {
    const root = tempRoot({ 'stack-backup.yaml': '' });
    expect(loadGlobalConfig(root, {}).duplicati.driver).toBe('exec');
  });

  it('an unknown driver or a URL that is not http(s): ConfigError naming the key', () => {
    expect(configError(() => loadGlobalConfig(tempRoot({ 'stack-backup.yaml': 'duplicati:\n  driver: rest\n' }), {})).key).toBe('duplicati.driver');
    const url = configError(() => loadGlobalConfig(tempRoot({ 'stack-backup.yaml': 'duplicati:\n  driver: api\n  url: ftp://duplicati:8200\n' }), { DUPLICATI_PASSWORD: 'x' }));
    expect(url.key).toBe('duplicati.url');
    expect(url.message).toMatch(/http:\/\/ or https:\/\//);
  });
});

describe('monitor settings', () => {
  const globalYaml = 'monitor:\n  healthchecks: https://hc.example.com/ping/global\n  webhook: https://ntfy.example.com/global\n';

  function load(stackYaml: string, yaml = globalYaml) {
    const root = tempRoot({ 'stack-backup.yaml': yaml, 'stacks/app.yaml': stackYaml });
    return loadStack(root, 'app', loadGlobalConfig(root, {}));
  }

  it('a stack without monitor keys takes stack-backup.yaml\'s', () => {
    expect(load('duplicati_jobs: [app]\n').monitor).toEqual({ healthchecks: 'https://hc.example.com/ping/global', webhook: 'https://ntfy.example.com/global' });
  });

  it('each key of the stack file replaces that key only', () => {
    expect(load('duplicati_jobs: [app]\nmonitor:\n  healthchecks: https://hc.example.com/ping/app\n').monitor).toEqual({
      healthchecks: 'https://hc.example.com/ping/app',
      webhook: 'https://ntfy.example.com/global',
    });
    expect(load('duplicati_jobs: [app]\nmonitor:\n  webhook: http://hooks.local/app\n').monitor).toEqual({
      healthchecks: 'https://hc.example.com/ping/global',
      webhook: 'http://hooks.local/app',
    });
  });

  it('no monitoring anywhere: both undefined', () => {
    expect(load('duplicati_jobs: [app]\n', '').monitor).toEqual({ healthchecks: undefined, webhook: undefined });
  });

  it('a bad URL in a stack file: ConfigError naming stacks/app.yaml and monitor.healthchecks', () => {
    const error = configError(() => load('duplicati_jobs: [app]\nmonitor:\n  healthchecks: hc.example.com/ping/app\n'));
    expect(error.file).toBe('stacks/app.yaml');
    expect(error.key).toBe('monitor.healthchecks');
    expect(error.message).toMatch(/http:\/\/ or https:\/\/ URL/);
  });

  it('a bad URL in stack-backup.yaml: ConfigError naming monitor.webhook', () => {
    const error = configError(() => loadGlobalConfig(tempRoot({ 'stack-backup.yaml': 'monitor:\n  webhook: "https://has a space"\n' }), {}));
    expect(error.file).toBe('stack-backup.yaml');
    expect(error.key).toBe('monitor.webhook');
  });

  it('an unknown monitor key names the allowed ones', () => {
    const error = configError(() => load('duplicati_jobs: [app]\nmonitor:\n  email: me@example.com\n'));
    expect(error.key).toBe('monitor.email');
    expect(error.message).toContain('healthchecks, webhook');
  });
});

describe('metrics_file', () => {
  it('an absolute path is kept', () => {
    const root = tempRoot({ 'stack-backup.yaml': 'metrics_file: /var/lib/node_exporter/textfile/stack_backup.prom\n' });
    expect(loadGlobalConfig(root, {}).metricsFile).toBe('/var/lib/node_exporter/textfile/stack_backup.prom');
  });

  it('left out: undefined', () => {
    expect(loadGlobalConfig(tempRoot({ 'stack-backup.yaml': '' }), {}).metricsFile).toBeUndefined();
  });

  it('a relative path: ConfigError naming metrics_file', () => {
    const error = configError(() => loadGlobalConfig(tempRoot({ 'stack-backup.yaml': 'metrics_file: textfile/stack_backup.prom\n' }), {}));
    expect(error.file).toBe('stack-backup.yaml');
    expect(error.key).toBe('metrics_file');
    expect(error.message).toMatch(/absolute path/);
  });
});
