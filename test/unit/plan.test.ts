/**
 * src/plan.ts (the --dry-run plan) and src/report.ts (durations, the summary table, progress).
 */
import { describe, expect, it } from 'vitest';
import type { StackConfig } from '../../src/config/types.js';
import { planStack } from '../../src/plan.js';
import { createProgress, formatSeconds, formatSummary } from '../../src/report.js';
import { FakeClock, globalConfig, hooks, runStack, stackConfig, worldWithStack } from '../fakes.js';

const socket = '/run/user/1000/podman/podman.sock';

function fullStack(overrides: Partial<StackConfig> = {}): StackConfig {
  return stackConfig({
    hooks: hooks({
      pre_stop: ['maintenance on', 'flush'],
      post_stop: ['snapshot'],
      pre_backup: ['list'],
      post_backup: ['drop snapshot'],
      pre_start: ['fix perms'],
      post_start: ['maintenance off'],
      verify: ['curl -f http://localhost/health'],
    }),
    freeze: { socket: 'app-proxy.socket', service: 'app-proxy.service' },
    jobs: ['app', 'app-files'],
    ...overrides,
  });
}

describe('planStack', () => {
  it('starts with the stack name and file, then numbered steps', () => {
    const stack = stackConfig();
    const [title, ...steps] = planStack(stack, globalConfig(), socket);
    expect(title).toBe(`app (${stack.file})`);
    steps.forEach((line, index) => expect(line).toMatch(new RegExp(`^  ${index + 1}\\. `)));
  });

  it('names the exact commands: stop and start of the unit, run of each job, the status poll, the socket', () => {
    const plan = planStack(stackConfig({ jobs: ['app', '7'] }), globalConfig(), socket).join('\n');
    expect(plan).toContain('systemctl --user stop app-stack.service');
    expect(plan).toContain('systemctl --user start app-stack.service');
    expect(plan).toContain('podman exec duplicati duplicati-server-util run -- app');
    expect(plan).toContain('podman exec duplicati duplicati-server-util run -- 7');
    expect(plan).toContain('podman exec duplicati duplicati-server-util status');
    expect(plan).toContain(`wait until no container labelled io.podman.compose.project=app runs (Podman API ${socket}`);
    expect(plan).not.toContain('backup_mount');
  });

  it('uses the configured container, server_util, unit and label', () => {
    const global = globalConfig({
      duplicati: { ...globalConfig().duplicati, container: 'backup', serverUtil: '/app/duplicati/duplicati-server-util' },
      backupMount: '/mnt/backup',
    });
    const stack = stackConfig({ unit: 'wiki.service', selector: { key: 'PODMAN_SYSTEMD_UNIT', value: 'wiki.service' } });
    const plan = planStack(stack, global, socket).join('\n');
    expect(plan).toContain('podman exec backup /app/duplicati/duplicati-server-util run -- app');
    expect(plan).toContain('systemctl --user stop wiki.service');
    expect(plan).toContain('container labelled PODMAN_SYSTEMD_UNIT=wiki.service');
    expect(plan).toContain('check that backup_mount /mnt/backup can be read');
  });

  it('shows the timeouts as configured', () => {
    const global = globalConfig({ duplicati: { ...globalConfig().duplicati, runTimeoutMs: 40_000, waitTimeoutMs: 7_200_000, pollIntervalMs: 2000 } });
    const plan = planStack(stackConfig({ stopTimeoutMs: 90_000, startTimeoutMs: 45_000 }), global, socket).join('\n');
    expect(plan).toContain(`stop_timeout ${formatSeconds(90_000)}`);
    expect(plan).toContain(`start_timeout ${formatSeconds(45_000)}`);
    expect(plan).toContain(`run_timeout ${formatSeconds(40_000)}`);
    expect(plan).toContain(`wait_timeout ${formatSeconds(7_200_000)}`);
    expect(plan).toContain(`every ${formatSeconds(2000)}`);
  });

  it('states the restore policy', () => {
    const previous = planStack(stackConfig({ restorePolicy: 'previous' }), globalConfig(), socket).join('\n');
    const always = planStack(stackConfig({ restorePolicy: 'always' }), globalConfig(), socket).join('\n');
    expect(previous).toMatch(/systemctl --user start app-stack.service if it was active before \(restore_policy previous/);
    expect(always).toMatch(/systemctl --user start app-stack.service \(restore_policy always/);
  });

  it('shows hooks as sh -c commands, quoted', () => {
    const plan = planStack(fullStack(), globalConfig(), socket).join('\n');
    expect(plan).toContain('verify hook: sh -c "curl -f http://localhost/health"');
    expect(plan).toContain('pre_stop hook: sh -c "maintenance on"');
  });

  it('lists the same changes, in the same order, as a real run does', async () => {
    const stack = fullStack();
    const world = worldWithStack('active').unit('app-proxy.socket', 'active').unit('app-proxy.service', 'active');
    world.duplicati.job('2', 'app-files', 'app-stack.service');
    const { result } = await runStack(world, stack);
    expect(result.ok).toBe(true);
    const done = world.actions.filter((action) => action !== 'duplicati status');
    const planned = planStack(stack, globalConfig(), socket)
      .slice(1)
      .map((line) => line.replace(/^ {2}\d+\. /, ''))
      .flatMap((line): string[] => {
        const hook = /^(\w+) hook: sh -c (".*")$/.exec(line);
        if (hook) return [`hook ${hook[1]}: ${JSON.parse(hook[2]!) as string}`];
        const systemctl = /^systemctl --user (stop|start) (\S+)/.exec(line);
        if (systemctl) return [`${systemctl[1]} ${systemctl[2]}`];
        const run = / run -- (\S+) \(run_timeout/.exec(line);
        if (run) return [`duplicati run ${run[1]}`];
        return [];
      });
    expect(planned).toEqual(done);
  });
});

describe('formatSeconds', () => {
  it.each([
    [undefined, '-'],
    [0, '0.0 s'],
    [500, '0.5 s'],
    [9_940, '9.9 s'],
    [25_000, '25 s'],
    [125_000, '2m05s'],
    [600_000, '10m00s'],
    [3_600_000, '1h00m'],
    [5_430_000, '1h30m'],
    [21_600_000, '6h00m'],
  ])('%s ms -> %s', (ms, text) => {
    expect(formatSeconds(ms)).toBe(text);
  });
});

describe('formatSummary', () => {
  it('a header and one aligned row per stack, the note unpadded', () => {
    const text = formatSummary([
      { stack: 'cryptpad', result: 'backed up', downtimeMs: 65_000, backupMs: 60_000, note: '' },
      { stack: 'wiki', result: 'FAILED', downtimeMs: undefined, backupMs: undefined, note: 'pre_stop hook "x" failed with exit 1' },
    ]);
    const lines = text.split('\n');
    expect(text.endsWith('\n')).toBe(true);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^STACK\s+RESULT\s+DOWNTIME\s+BACKUP\s+NOTE$/);
    expect(lines[1]).toMatch(new RegExp(`^cryptpad\\s+backed up\\s+${formatSeconds(65_000)}\\s+${formatSeconds(60_000)}$`));
    expect(lines[2]).toMatch(/^wiki\s+FAILED\s+-\s+-\s+pre_stop hook "x" failed with exit 1$/);
    const column = (line: string, word: string) => line.indexOf(word);
    expect(column(lines[1]!, 'backed up')).toBe(column(lines[0]!, 'RESULT'));
    expect(column(lines[2]!, 'FAILED')).toBe(column(lines[0]!, 'RESULT'));
    for (const line of lines) expect(line).toBe(line.trimEnd());
  });

  it('no rows: just the header', () => {
    expect(formatSummary([])).toBe('STACK  RESULT  DOWNTIME  BACKUP  NOTE\n');
  });
});

describe('createProgress', () => {
  it('without a terminal: a line when a step starts and one when it ends, with its outcome and time', () => {
    const written: string[] = [];
    const clock = new FakeClock();
    const progress = createProgress({ write: (text) => written.push(text) }, clock);
    const end = progress.begin('app', 'stop unit');
    clock.advance(2500);
    end('done');
    const failed = progress.begin('app', 'backup job app');
    failed('failed');
    progress.message('[app] warning: slow');
    expect(written).toEqual([
      '[app] stop unit ...\n',
      `[app] stop unit: ok (${formatSeconds(2500)})\n`,
      '[app] backup job app ...\n',
      `[app] backup job app: FAILED (${formatSeconds(0)})\n`,
      '[app] warning: slow\n',
    ]);
  });

  it('on a terminal: redraws the current line', () => {
    const written: string[] = [];
    const progress = createProgress({ write: (text) => written.push(text), isTTY: true }, new FakeClock());
    const end = progress.begin('app', 'stop unit');
    end('done');
    expect(written[0]!.startsWith('\r\x1b[K[app] stop unit ... ')).toBe(true);
    expect(written.at(-1)!.startsWith('\r\x1b[K[app] stop unit: ok')).toBe(true);
  });
});
