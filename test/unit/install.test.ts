/**
 * src/host/install.ts: one timer and service per root, their names (as systemd-escape --path writes
 * them), their text, the replacement of an earlier version's stack-backup.timer, uninstall and
 * install --list; against a temp unit folder and a recording SystemdManager.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SystemdManager } from '../../src/adapters/systemd.js';
import {
  escapePath,
  installedRoots,
  installedStopTimeout,
  installUnits,
  renderUnits,
  rootOfServiceFile,
  stopTimeoutSeconds,
  uninstallUnits,
  unescapePath,
  unitNames,
  type InstallPaths,
} from '../../src/host/install.js';
import { removeTempRoots, stackConfig, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const installDir = path.resolve(import.meta.dirname, '..', '..');

function paths(root: string, unitDir = path.join(tempRoot(), 'systemd', 'user')): InstallPaths {
  return { installDir, cli: '/opt/stack-backup/dist/cli.js', node: '/usr/bin/node', root, unitDir };
}

function recordingSystemd(): SystemdManager & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    daemonReload: async () => void calls.push('daemon-reload'),
    enableNow: async (unit) => void calls.push(`enable --now ${unit}`),
    disableNow: async (unit) => void calls.push(`disable --now ${unit}`),
  };
}

describe('unit names', () => {
  // Each expected value is what `systemd-escape --path` printed for the path (systemd 252).
  it.each([
    ['/home/me/stack-backup', 'home-me-stack\\x2dbackup'],
    ['/var/tmp/sb w13/ro-ot.x', 'var-tmp-sb\\x20w13-ro\\x2dot.x'],
    ['/', '-'],
    ['/a/.b/ü%', 'a-.b-\\xc3\\xbc\\x25'],
    ['/.x/y', '\\x2ex-y'],
    ['/a//b/', 'a-b'],
    ['/srv/back up:1_2', 'srv-back\\x20up:1_2'],
  ])('%s -> stack-backup@%s', (root, escaped) => {
    expect(escapePath(root)).toBe(escaped);
    expect(unitNames(root)).toEqual({ service: `stack-backup@${escaped}.service`, timer: `stack-backup@${escaped}.timer` });
    expect(unescapePath(escaped)).toBe(root === '/a//b/' ? '/a/b' : root);
  });
});

describe('the unit files', () => {
  it('service: runs all for the root, recover after every end, TimeoutStopSec from the configuration', () => {
    const root = '/srv/my root%1';
    const [service, timer] = renderUnits(paths(root), 1234);
    expect(service!.name).toBe(unitNames(root).service);
    expect(service!.text).toContain('ExecStart="/usr/bin/node" "/opt/stack-backup/dist/cli.js" --root "/srv/my root%%1" all\n');
    expect(service!.text).toContain('ExecStopPost="/usr/bin/node" "/opt/stack-backup/dist/cli.js" --root "/srv/my root%%1" recover\n');
    expect(service!.text).toContain('TimeoutStopSec=1234s\n');
    expect(service!.text).toContain('WorkingDirectory=/srv/my root%%1\n');
    expect(service!.text).toContain('TimeoutStartSec=infinity\n');
    expect(service!.text).toContain('KillMode=mixed\n');
    expect(service!.text).not.toMatch(/@[A-Z_]+@/);
    expect(rootOfServiceFile(service!.text)).toBe(root);
    expect(installedStopTimeout(service!.text)).toBe(1234);
    expect(timer!.name).toBe(unitNames(root).timer);
    expect(timer!.text).toContain(`Unit=${unitNames(root).service}\n`);
    expect(timer!.text).toContain('Persistent=true\n');
    expect(timer!.text).toContain('WantedBy=timers.target\n');
  });

  it('TimeoutStopSec covers the longest undo: start with pre_start hooks, unfreeze, post_start hooks, plus reports and a margin', () => {
    const plain = stackConfig({ startTimeoutMs: 120_000 });
    // 120 s start + 5 s slack, 17 s of monitoring reports, 60 s margin: below the 300 s floor.
    expect(stopTimeoutSeconds([plain])).toBe(300);
    const heavy = stackConfig({
      name: 'heavy',
      startTimeoutMs: 600_000,
      hookTimeoutMs: 100_000,
      freeze: { socket: 'heavy.socket', service: undefined },
      hooks: { ...plain.hooks, pre_start: ['a', 'b'], pre_stop: ['c'], post_start: ['d'] },
    });
    // restore: 600 + 2 x 100 + 5; unfreeze: 2 x 60 + 5; post_start: 100 + 5; + 17 + 60.
    expect(stopTimeoutSeconds([plain, heavy])).toBe(805 + 125 + 105 + 17 + 60);
  });

  it('installedStopTimeout understands what systemd accepts in the old files', () => {
    expect(installedStopTimeout('TimeoutStopSec=15min\n')).toBe(900);
    expect(installedStopTimeout('TimeoutStopSec=1h 30min\n')).toBe(5400);
    expect(installedStopTimeout('TimeoutStopSec=infinity\n')).toBe(Number.POSITIVE_INFINITY);
    expect(installedStopTimeout('[Service]\n')).toBeUndefined();
  });
});

describe('install, install --list, uninstall', () => {
  it('a second root gets its own units; the first root\'s stay', async () => {
    const unitDir = path.join(tempRoot(), 'user');
    const systemd = recordingSystemd();
    const said: string[] = [];
    await installUnits(paths('/srv/one', unitDir), 300, systemd, (text) => said.push(text));
    await installUnits(paths('/srv/two', unitDir), 400, systemd, (text) => said.push(text));
    expect(installedRoots(unitDir)).toEqual([
      { timer: 'stack-backup@srv-one.timer', service: 'stack-backup@srv-one.service', root: '/srv/one' },
      { timer: 'stack-backup@srv-two.timer', service: 'stack-backup@srv-two.service', root: '/srv/two' },
    ]);
    expect(systemd.calls).toEqual(['daemon-reload', 'enable --now stack-backup@srv-one.timer', 'daemon-reload', 'enable --now stack-backup@srv-two.timer']);
    expect(said.at(-1)).toBe('enabled stack-backup@srv-two.timer for /srv/two; see "systemctl --user list-timers stack-backup@srv-two.timer"');
  });

  it('replaces an earlier version\'s stack-backup.timer of the same root: disabled, removed, said so', async () => {
    const unitDir = path.join(tempRoot(), 'user');
    mkdirSync(unitDir, { recursive: true });
    writeFileSync(path.join(unitDir, 'stack-backup.service'), '[Service]\nExecStart="/usr/bin/node" "/x/cli.js" --root "/srv/one" all\n');
    writeFileSync(path.join(unitDir, 'stack-backup.timer'), '[Timer]\nOnCalendar=daily\n');
    const systemd = recordingSystemd();
    const said: string[] = [];
    await installUnits(paths('/srv/one', unitDir), 300, systemd, (text) => said.push(text));
    expect(existsSync(path.join(unitDir, 'stack-backup.timer'))).toBe(false);
    expect(existsSync(path.join(unitDir, 'stack-backup.service'))).toBe(false);
    expect(systemd.calls[0]).toBe('disable --now stack-backup.timer');
    expect(said[0]).toBe(
      `replaced stack-backup.timer of an earlier version: disabled it and removed ${unitDir}/stack-backup.timer and ${unitDir}/stack-backup.service`,
    );
  });

  it('an earlier version\'s timer of another root is left alone, with a warning', async () => {
    const unitDir = path.join(tempRoot(), 'user');
    mkdirSync(unitDir, { recursive: true });
    writeFileSync(path.join(unitDir, 'stack-backup.service'), '[Service]\nExecStart="/usr/bin/node" "/x/cli.js" --root "/srv/other" all\n');
    writeFileSync(path.join(unitDir, 'stack-backup.timer'), '[Timer]\n');
    const systemd = recordingSystemd();
    const said: string[] = [];
    await installUnits(paths('/srv/one', unitDir), 300, systemd, (text) => said.push(text));
    expect(existsSync(path.join(unitDir, 'stack-backup.timer'))).toBe(true);
    expect(systemd.calls).not.toContain('disable --now stack-backup.timer');
    expect(said[0]).toContain('warning: stack-backup.timer of an earlier version serves /srv/other; left alone');
  });

  it('uninstall disables and removes this root\'s units only', async () => {
    const unitDir = path.join(tempRoot(), 'user');
    const systemd = recordingSystemd();
    await installUnits(paths('/srv/one', unitDir), 300, systemd, () => {});
    await installUnits(paths('/srv/two', unitDir), 300, systemd, () => {});
    systemd.calls.length = 0;
    expect(await uninstallUnits('/srv/one', unitDir, systemd, () => {})).toBe(true);
    expect(systemd.calls).toEqual(['disable --now stack-backup@srv-one.timer', 'daemon-reload']);
    expect(installedRoots(unitDir).map((entry) => entry.root)).toEqual(['/srv/two']);
    expect(readFileSync(path.join(unitDir, 'stack-backup@srv-two.service'), 'utf8')).toContain('--root "/srv/two" all');
    expect(await uninstallUnits('/srv/one', unitDir, systemd, () => {})).toBe(false);
  });

  it('a signal before the files are written: nothing written, AbortedError', async () => {
    const unitDir = path.join(tempRoot(), 'user');
    const controller = new AbortController();
    const { AbortedError } = await import('../../src/errors.js');
    controller.abort(new AbortedError('SIGTERM'));
    await expect(installUnits(paths('/srv/one', unitDir), 300, recordingSystemd(), () => {}, controller.signal)).rejects.toBeInstanceOf(AbortedError);
    expect(installedRoots(unitDir)).toEqual([]);
  });
});
