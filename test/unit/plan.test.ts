/**
 * src/backup/plan.ts (the --dry-run plan) and src/report/report.ts (durations, the summary table, progress).
 */
import { describe, expect, it } from 'vitest';
import type { StackConfig } from '../../src/config/types.js';
import type { UndoRecord } from '../../src/journal/journal.js';
import { armedRunArgv, sessionArgv } from '../../src/adapters/duplicati-session.js';
import { planStack } from '../../src/backup/plan.js';
import { shellLine } from '../../src/shell-quote.js';
import { stackSteps } from '../../src/backup/sequence.js';
import { undoName } from '../../src/journal/undo-records.js';
import { formatBytes, formatSeconds } from '../../src/format.js';
import { createProgress, formatSummary } from '../../src/report/report.js';
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
  it('starts with the stack name, file, Podman API and driver, then numbered steps with their actions indented', () => {
    const stack = stackConfig();
    const [title, ...lines] = planStack(stack, globalConfig(), socket);
    expect(title).toBe(`app (${stack.file}), Podman API ${socket}, Duplicati driver exec`);
    const numbered = lines.filter((line) => /^ {2}\d+\. /.test(line));
    numbered.forEach((line, index) => expect(line).toMatch(new RegExp(`^  ${index + 1}\\. `)));
    expect(numbered.length).toBeGreaterThan(4);
  });

  it('names the exact commands: stop and start of the unit, the exec session and each job\'s armed run, the polls, the container wait', () => {
    const plan = planStack(stackConfig({ jobs: ['app', '7'] }), globalConfig(), socket).join('\n');
    expect(plan).toContain('systemctl --user stop -- app-stack.service');
    expect(plan).toContain('systemctl --user start -- app-stack.service');
    // The session, opened before the stop, and the podman exec that runs the first job on one line.
    expect(plan).toContain(`open the exec session ${shellLine(sessionArgv(globalConfig().duplicati))}`);
    expect(plan).toContain(`open the podman exec that will run job app (it runs nothing until told), and wait until it is up: ${shellLine(armedRunArgv(globalConfig().duplicati, 'app', 21685))}`);
    expect(plan).toContain('timeout -s KILL 21685 duplicati-server-util run --wait --poll-interval 1 -- app: the job is queued once it prints "Waiting for backup to finish..."');
    expect(plan).toContain('timeout -s KILL 21685 duplicati-server-util run --wait --poll-interval 1 -- 7:');
    // Were the armed exec gone: the record and the run in one podman exec, as without sessions.
    const chain = (first: string, last: string) => `podman exec duplicati sh -c '${first} 2>&1; e=$?; echo; echo "@stack-backup:exit=$e"; [ "$e" = 0 ] || exit "$e"; exec ${last}'`;
    expect(plan).toContain(chain('timeout -s KILL 30 duplicati-server-util --json list-backups', 'timeout -s KILL 25 duplicati-server-util run -- app'));
    expect(plan).toContain(chain('timeout -s KILL 30 duplicati-server-util --json list-backups', 'timeout -s KILL 25 duplicati-server-util run -- 7'));
    // The first job judged while the stack is down (another follows): its record with the poll that sees it gone.
    expect(plan).toContain('poll json ID (duplicati-server-util status, then, once backup ID is neither queued nor active, duplicati-server-util --json list-backups) in the exec session, one call after the other while the stack is down');
    expect(plan).toContain('meanwhile, from the stop on: duplicati-server-util status in the exec session, one call after the other while the stack is down; once a look begun after the stop shows Duplicati idle, job app\'s ID and record');
    expect(plan).toContain("once the stack runs again (reading it costs calls the downtime need not wait for): job 7's record");
    expect(plan).toContain('Podman API: GET /v4.0.0/libpod/containers/json?all=true&filters={"label":["io.podman.compose.project=app"]}');
    expect(plan).not.toContain('backup_mount');
  });

  it('includes the whole preflight: the Podman API, the Duplicati container, every unit, backup_mount', () => {
    const global = globalConfig({ backupMount: '/mnt/backup' });
    const plan = planStack(fullStack(), global, socket).join('\n');
    expect(plan).toContain('Podman API: GET /_ping');
    expect(plan).toContain('Podman API: GET /containers/duplicati/json (must be running)');
    for (const unit of ['app-stack.service', 'app-proxy.socket', 'app-proxy.service']) {
      expect(plan).toContain(`systemctl --user show --property=LoadState,ActiveState,UnitFileState -- ${unit} (must be loaded)`);
    }
    expect(plan).toContain('read one entry of backup_mount /mnt/backup in a child process, killed after 30 s');
  });

  it('uses the configured container, server_util, unit and label', () => {
    const global = globalConfig({
      duplicati: { ...globalConfig().duplicati, container: 'backup', serverUtil: '/app/duplicati/duplicati-server-util' },
    });
    const stack = stackConfig({ unit: 'wiki.service', selector: { key: 'PODMAN_SYSTEMD_UNIT', value: 'wiki.service' } });
    const plan = planStack(stack, global, socket).join('\n');
    expect(plan).toContain(`podman exec backup sh -c 'timeout -s KILL 30 /app/duplicati/duplicati-server-util --json list-backups 2>&1;`);
    expect(plan).toContain(`exec timeout -s KILL 25 /app/duplicati/duplicati-server-util run -- app' (run_timeout`);
    expect(plan).toContain(`podman exec -i backup sh -c 'while IFS= read -r r; do case "$r" in status) /app/duplicati/duplicati-server-util status ;;`);
    expect(plan).toContain('timeout -s KILL 21685 /app/duplicati/duplicati-server-util run --wait --poll-interval 1 -- app');
    expect(plan).toContain('systemctl --user stop -- wiki.service');
    expect(plan).toContain('"label":["PODMAN_SYSTEMD_UNIT=wiki.service"]');
  });

  it('the api driver: the REST calls, not podman exec', () => {
    const global = globalConfig({ duplicati: { ...globalConfig().duplicati, driver: 'api', url: 'http://127.0.0.1:8200' } });
    const plan = planStack(stackConfig(), global, socket).join('\n');
    expect(plan).toContain('Duplicati driver api');
    expect(plan).toContain('GET http://127.0.0.1:8200/api/v1/serverstate');
    expect(plan).toContain('POST http://127.0.0.1:8200/api/v1/backup/ID/run, ID the backup named app');
    expect(plan).toContain('GET http://127.0.0.1:8200/api/v1/backup/ID/log?pagesize=5');
    expect(plan).not.toContain('podman exec');
  });

  it('shows the timeouts as configured', () => {
    const global = globalConfig({ duplicati: { ...globalConfig().duplicati, runTimeoutMs: 40_000, waitTimeoutMs: 7_200_000, pollIntervalMs: 2000 } });
    const plan = planStack(stackConfig({ stopTimeoutMs: 90_000, startTimeoutMs: 45_000 }), global, socket).join('\n');
    expect(plan).toContain(`stop_timeout ${formatSeconds(90_000)}`);
    expect(plan).toContain(`start_timeout ${formatSeconds(45_000)}`);
    expect(plan).toContain(`run_timeout ${formatSeconds(40_000)}`);
    expect(plan).toContain(`wait_timeout ${formatSeconds(7_200_000)}`);
    // poll_interval paces the looks while the stack runs (before the stop); while it is down they go one after the other.
    expect(plan).toContain(`every ${formatSeconds(2000)} (poll_interval)`);
    expect(plan).toContain('one call after the other while the stack is down');
    expect(plan).toContain(`timeout -s KILL ${(40_000 + 7_200_000 + 60_000) / 1000} duplicati-server-util run --wait`);
  });

  it('states the restore policy', () => {
    const previous = planStack(stackConfig({ restorePolicy: 'previous' }), globalConfig(), socket).join('\n');
    const always = planStack(stackConfig({ restorePolicy: 'always' }), globalConfig(), socket).join('\n');
    expect(previous).toMatch(/systemctl --user start -- app-stack.service \(start_timeout .*\), if it was active before \(restore_policy previous\)/);
    expect(always).toMatch(/systemctl --user start -- app-stack.service \(start_timeout .*\), always \(restore_policy always\)/);
  });

  it('shows hooks as the /bin/sh -c command lines they run, shell-quoted', () => {
    const stack = fullStack({ hooks: hooks({ pre_stop: [`echo "it's on" > /tmp/x`], verify: ['curl -f http://localhost/health'] }) });
    const plan = planStack(stack, globalConfig(), socket).join('\n');
    expect(plan).toContain(`verify hook: /bin/sh -c 'curl -f http://localhost/health'`);
    expect(plan).toContain(`pre_stop hook: /bin/sh -c 'echo "it'\\''s on" > /tmp/x'`);
  });
});

/** The mutating actions a FakeWorld records, read back out of a plan's lines. */
function plannedActions(plan: string[], driver: 'exec' | 'api'): string[] {
  return plan.flatMap((line): string[] => {
    const hook = /^ +(\w+) hook: \/bin\/sh -c (.*)$/.exec(line);
    if (hook) {
      const word = hook[2]!;
      const command = word.startsWith("'") ? word.slice(1, -1).replace(/'\\''/g, "'") : word;
      return [`hook ${hook[1]}: ${command}`];
    }
    const systemctl = /^ +systemctl --user (stop|start) -- (\S+?),?(?: |$)/.exec(line);
    if (systemctl) return [`${systemctl[1]} ${systemctl[2]}`];
    const run = driver === 'exec' ? / run -- (\S+?)'? \(run_timeout/.exec(line) : /\/run, ID the backup named (\S+) in/.exec(line);
    if (run) return [`duplicati run ${run[1]}`];
    return [];
  });
}

describe('the dry run and the run come from one list', () => {
  const drivers = ['exec', 'api'] as const;
  const variants: Array<[string, Partial<StackConfig>]> = [
    ['every step', {}],
    ['no hooks, no freeze', { hooks: hooks({}), freeze: undefined, jobs: ['app'] }],
    ['restore_policy always', { restorePolicy: 'always' }],
  ];

  for (const driver of drivers) {
    for (const [variant, overrides] of variants) {
      it(`stop mode, ${driver} driver, ${variant}: the same step names and the same changes, in the same order`, async () => {
        const stack = fullStack(overrides);
        const global = globalConfig({
          backupMount: '/mnt/backup',
          duplicati: { ...globalConfig().duplicati, driver, url: 'http://127.0.0.1:8200' },
        });
        const world = worldWithStack('active').unit('app-proxy.socket', 'active').unit('app-proxy.service', 'active');
        world.duplicati.job('2', 'app-files', 'app-stack.service');
        const journaled: string[] = [];
        const journal = { add: (_stack: string, record: UndoRecord) => (journaled.push(undoName(record)), String(journaled.length)), update: () => {}, remove: () => {}, pending: () => [] };
        const { result } = await runStack(world, stack, { global, journal });
        expect(result.ok).toBe(true);
        const plan = planStack(stack, global, socket);
        // The undos the journal recorded are the ones the listed steps say they register.
        expect(journaled).toEqual(stackSteps(stack, global).flatMap((step) => (step.undo ? [step.undo.name] : [])));
        const stepNames = plan
          .map((line) => /^ {2}\d+\. (.+?)(?: \(first registers| \(only when|$)/.exec(line)?.[1])
          .filter((name): name is string => name !== undefined);
        // The forward steps the run walked, then its undos, then verify: as the plan lists them.
        expect(stepNames.slice(0, result.steps!.length)).toEqual(result.steps);
        const done = world.actions.filter((action) => action !== 'duplicati status' && !action.startsWith('check '));
        expect(plannedActions(plan, driver)).toEqual(done);
      });
    }
  }

  it('a failed step: the run walked a prefix of the same list', async () => {
    const stack = fullStack();
    const world = worldWithStack('active').unit('app-proxy.socket', 'active').unit('app-proxy.service', 'active');
    world.duplicati.job('2', 'app-files', 'app-stack.service');
    world.failing.add('stop app-stack.service');
    const { result } = await runStack(world, stack);
    expect(result.ok).toBe(false);
    const names = planStack(stack, globalConfig(), socket)
      .map((line) => /^ {2}\d+\. (.+?)(?: \(first registers| \(only when|$)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
    expect(result.steps).toEqual(names.slice(0, names.indexOf('stop unit') + 1));
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

describe('formatBytes: one unit system, three figures at most (issue 30)', () => {
  it.each([
    [0, '0 B'],
    [102, '102 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [1_048_000, '1.00 MiB'],
    [12.3 * 1024 ** 2, '12.3 MiB'],
    [150 * 1024 ** 2, '150 MiB'],
    [1.5 * 1024 ** 3, '1.5 GiB'],
    [840 * 1024 ** 3, '840 GiB'],
  ])('%d bytes: %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
