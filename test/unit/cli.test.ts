/**
 * The command line as a user meets it (src/cli.ts and src/commands/): main() in-process with
 * standard output and error captured, against temp roots. Only commands that read files are
 * run here; those that touch systemd, Podman or Duplicati are covered by the e2e tests.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli.js';
import { appendHistory, localDay, type HistoryEntry } from '../../src/report/history.js';
import { removeTempRoots, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(...argv: string[]): Promise<Outcome> {
  // Where a dry run finds the Podman API; nothing connects to it.
  vi.stubEnv('CONTAINER_HOST', 'unix:///run/user/1000/podman/podman.sock');
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

/** A root only the user can write, as the permission checks want it. */
function root(files: Record<string, string> = {}): string {
  const folder = tempRoot({ 'stacks/app.yaml': 'duplicati_jobs: [app]\n', ...files });
  for (const name of ['', 'stacks', ...Object.keys(files), 'stacks/app.yaml']) {
    try {
      chmodSync(path.join(folder, name), name === '' || name === 'stacks' ? 0o755 : 0o644);
    } catch {
      // A file a test removed.
    }
  }
  return folder;
}

describe('version and help', () => {
  it('--version and -V print the package version, exit 0', async () => {
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
    for (const flag of ['--version', '-V']) {
      const result = await cli(flag);
      expect(result).toMatchObject({ code: 0, stdout: `${version}\n` });
    }
  });

  it('help [command] prints that command\'s help, exit 0', async () => {
    const result = await cli('help', 'status');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: stack-backup status');
    expect(result.stdout).toContain('--max-age <duration>');
    const top = await cli('help');
    expect(top.stdout).toContain('uninstall');
    expect(top.stdout).toContain('-q, --quiet');
  });
});

describe('global options', () => {
  it('work before or after the command', async () => {
    const folder = root();
    const before = await cli('--root', folder, '--json', 'list');
    const after = await cli('list', '--json', '--root', folder);
    expect(before.code).toBe(0);
    expect(after.stdout).toBe(before.stdout);
    expect(JSON.parse(before.stdout).stacks.map((stack: { name: string }) => stack.name)).toEqual(['app']);
  });

  it.each([
    ['status', '--dry-run'],
    ['list', '--dry-run'],
    ['doctor', '--dry-run'],
    ['recover', '--json'],
    ['install', '--json'],
  ])('%s %s: exit 2 saying the command cannot honour it, nothing printed on stdout', async (command, flag) => {
    const result = await cli('--root', root(), command, flag);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`"${command}" cannot honour ${flag}`);
  });

  it('-q with -v: exit 2', async () => {
    const result = await cli('--root', root(), '-q', '-v', 'list');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--quiet and --verbose cannot be combined');
  });

  it('"--" ends the options: a name beginning with "-" is a stack name, not an option', async () => {
    const folder = root({ 'stacks/-odd.yaml': 'duplicati_jobs: [odd]\n' });
    const asOption = await cli('--root', folder, '--dry-run', '-odd');
    expect(asOption.code).toBe(2);
    expect(asOption.stderr).toContain("unknown option '-odd'");
    const asName = await cli('--root', folder, '--dry-run', '--', '-odd');
    expect(asName.stderr).toBe('');
    expect(asName.code).toBe(0);
    expect(asName.stdout).toContain('Dry run: nothing was touched (1 stack)');
  });
});

describe('stacks and names', () => {
  it('`all` with no stack configured: exit 2, "no stacks in <root>/stacks", also with --dry-run', async () => {
    const folder = tempRoot();
    mkdirSync(path.join(folder, 'stacks'));
    for (const argv of [['all'], ['--dry-run', 'all']]) {
      const result = await cli('--root', folder, ...argv);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`stack-backup: no stacks in ${folder}/stacks\n`);
    }
  });

  it('stacks/*.yml is a stack too; the same name as .yaml and .yml is exit 2 naming both files', async () => {
    const folder = root({ 'stacks/beta.yml': 'duplicati_jobs: [beta]\n' });
    const listed = await cli('--root', folder, '--json', 'list');
    expect(JSON.parse(listed.stdout).stacks.map((stack: { name: string; file: string }) => [stack.name, path.basename(stack.file)])).toEqual([
      ['app', 'app.yaml'],
      ['beta', 'beta.yml'],
    ]);
    writeFileSync(path.join(folder, 'stacks/app.yml'), 'duplicati_jobs: [other]\n');
    const both = await cli('--root', folder, 'list');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('stacks/app.yml: stack "app" is also defined by stacks/app.yaml');
  });

  it.each([
    ['_template', 'a name beginning with "_" is a template (such as stacks/_template.yaml), not a stack'],
    ['.hidden', 'a name beginning with "." is a hidden file, not a stack'],
    ['a/b', 'a stack name cannot contain "/"'],
    ['a b', 'a stack name may hold only letters, digits, "-", "_" and "." (found " ")'],
    ['uninstall', '"uninstall" is a command\'s name and cannot name a stack'],
  ])('"%s": exit 2 naming the rule it breaks', async (name, rule) => {
    const folder = root({ 'stacks/_template.yaml': 'duplicati_jobs: [x]\n' });
    const result = await cli('--root', folder, '--dry-run', '--', 'app', name);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`"${name}" is not a stack name: ${rule}`);
  });

  it('a stack file with a name that breaks a rule: exit 2 naming the file and the rule', async () => {
    const folder = root({ 'stacks/my app.yaml': 'duplicati_jobs: [x]\n' });
    const result = await cli('--root', folder, 'list');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('stacks/my app.yaml: "my app" is not a stack name: a stack name may hold only letters');
  });
});

describe('timeouts', () => {
  it.each([
    ['stop_timeout: .inf', 'stacks/app.yaml: stop_timeout:', 'Infinity'],
    ['hook_timeout: 1e12', 'stacks/app.yaml: hook_timeout:', '1000000000000'],
    ['start_timeout: 604801', 'stacks/app.yaml: start_timeout:', '604801'],
  ])('%s: exit 2 naming the key', async (line, where, got) => {
    const folder = root({ 'stacks/app.yaml': `duplicati_jobs: [app]\n${line}\n` });
    const result = await cli('--root', folder, 'list');
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`stack-backup: ${where} expected a number of seconds greater than 0 and at most 604800 (7 days) (got ${got})\n`);
  });

  it('7 days exactly is allowed; the global duplicati.wait_timeout is bounded too', async () => {
    expect((await cli('--root', root({ 'stacks/app.yaml': 'duplicati_jobs: [app]\nstart_timeout: 604800\n' }), 'list')).code).toBe(0);
    const global = await cli('--root', root({ 'stack-backup.yaml': 'duplicati:\n  wait_timeout: .inf\n' }), 'list');
    expect(global.code).toBe(2);
    expect(global.stderr).toContain('stack-backup.yaml: duplicati.wait_timeout: expected a number of seconds');
  });
});

describe('JSON documents', () => {
  it('list --json: version, root, stacks with snake_case keys and seconds', async () => {
    const folder = root();
    const document = JSON.parse((await cli('--root', folder, '--json', 'list')).stdout);
    expect(Object.keys(document)).toEqual(['version', 'root', 'stacks']);
    expect(document.version).toBe(1);
    expect(document.stacks[0]).toEqual({
      name: 'app',
      file: path.join(folder, 'stacks/app.yaml'),
      unit: 'app-stack.service',
      jobs: ['app'],
      restore_policy: 'previous',
      freeze_ondemand: false,
      ondemand_socket: null,
      ondemand_service: null,
      container_label: 'io.podman.compose.project=app',
      quadlet_label: true,
      stop_timeout_seconds: 120,
      start_timeout_seconds: 120,
      hook_timeout_seconds: 300,
    });
  });

  it('a dry run with --json: standard output holds only the document', async () => {
    const result = await cli('--root', root(), '--json', '--dry-run', 'all');
    expect(result.code).toBe(0);
    const document = JSON.parse(result.stdout);
    expect(document).toMatchObject({ version: 1, dry_run: true, stacks: [{ stack: 'app' }] });
    expect(result.stderr).toContain('Dry run: nothing was touched');
  });
});

describe('status --max-age', () => {
  const entry = (stack: string, endedAt: string, result: 'success' | 'failed' = 'success'): HistoryEntry => ({
    stack,
    run: 'r',
    startedAt: endedAt,
    endedAt,
    result,
    notRestored: false,
    downtimeMs: 1500,
    backupMs: 1000,
  });

  it('a stack never backed up counts as failed: exit 1, and the line says so', async () => {
    const result = await cli('--root', root(), 'status', '--max-age', '26h');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('app: never backed up successfully (--max-age 26h)');
    expect((await cli('--root', root(), 'status')).code).toBe(0);
  });

  it('last success within the age: exit 0; older: exit 1 naming the stack; JSON says which', async () => {
    const folder = root({ 'stacks/beta.yaml': 'duplicati_jobs: [beta]\n' });
    const now = Date.now();
    appendHistory(folder, entry('app', new Date(now - 2 * 3600_000).toISOString()));
    appendHistory(folder, entry('beta', new Date(now - 30 * 3600_000).toISOString()));
    const fresh = await cli('--root', folder, 'status', '--max-age', '1d12h');
    expect(fresh.code).toBe(0);
    const stale = await cli('--root', folder, 'status', '--max-age', '26h');
    expect(stale.code).toBe(1);
    expect(stale.stdout).toMatch(/^beta: last successful backup \S+ \S+ is older than 26h$/m);
    expect(stale.stdout).not.toMatch(/^app: /m);
    const document = JSON.parse((await cli('--root', folder, '--json', 'status', '--max-age', '26h')).stdout);
    expect(document).toMatchObject({ version: 1, root: folder, run_in_progress: false, max_age_seconds: 93_600 });
    expect(document.stacks.map((stack: { stack: string; last_success_too_old: boolean }) => [stack.stack, stack.last_success_too_old])).toEqual([
      ['app', false],
      ['beta', true],
    ]);
    expect(Object.keys(document.stacks[0]).sort()).toEqual(
      ['stack', 'state', 'last_run', 'result', 'outcome', 'error', 'mode', 'downtime_seconds', 'backup_seconds', 'snapshot_seconds', 'last_success', 'last_success_too_old', 'restored', 'pending_recovery', 'kept_paths', 'days', 'last_passing_restore_test', 'last_restore_test', 'untested_too_long'].sort(),
    );
    expect(document.stacks[0].downtime_seconds).toBe(1.5);
    expect(document.stacks[0].last_success).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('the first line is the verdict, in the issue\'s two forms; the exit codes stay as they were', async () => {
    const names = ['immich', 'mail', 'nextcloud', 'paperless', 'wiki'];
    const folder = root(Object.fromEntries(names.filter((name) => name !== 'app').map((name) => [`stacks/${name}.yaml`, `duplicati_jobs: [${name}]\n`])));
    const { rmSync } = await import('node:fs');
    rmSync(path.join(folder, 'stacks', 'app.yaml'));
    const ago = (hours: number) => new Date(Date.now() - hours * 3600_000).toISOString();
    for (const name of names) appendHistory(folder, entry(name, ago(5)));
    const good = await cli('--root', folder, 'status');
    expect(good.stdout.split('\n')[0]).toBe('5 stacks: all backed up within 26 h');
    expect(good.code).toBe(0);
    appendHistory(folder, entry('immich', ago(1), 'failed'));
    appendHistory(folder, entry('nextcloud', ago(200)));
    // nextcloud's last success: 31 h ago (a little more, so the hours read 31 however long the test takes).
    appendHistory(folder, entry('nextcloud', ago(31.01)));
    const bad = await cli('--root', folder, 'status');
    expect(bad.stdout.split('\n')[0]).toBe('5 stacks: 1 failed (immich), 1 overdue (nextcloud, last success 31 h ago)');
    expect(bad.code).toBe(1);
    // Overdue alone exits 1 only with --max-age, as before.
    appendHistory(folder, entry('immich', ago(0.5)));
    expect((await cli('--root', folder, 'status')).code).toBe(0);
    const aged = await cli('--root', folder, 'status', '--max-age', '26h');
    expect(aged.stdout.split('\n')[0]).toBe('5 stacks: 1 overdue (nextcloud, last success 31 h ago)');
    expect(aged.code).toBe(1);
    const document = JSON.parse((await cli('--root', folder, '--json', 'status')).stdout);
    expect(document.verdict).toBe('5 stacks: 1 overdue (nextcloud, last success 31 h ago)');
    expect(document.stacks.map((stack: { state: string }) => stack.state)).toEqual(['backed_up', 'backed_up', 'overdue', 'backed_up', 'backed_up']);
    expect(document.stacks[0].days).toHaveLength(14);
    expect(document.stacks[0].days).toContainEqual({ date: localDay(Date.parse(ago(0.5))), result: 'backed_up' });
  });

  it('a duration that is not one: exit 2', async () => {
    const result = await cli('--root', root(), 'status', '--max-age', 'soon');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--max-age: "soon" is not a duration');
  });
});

describe('--help and the README agree', () => {
  it('every command and global option of --help is in the README\'s command line section', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(path.resolve(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Command line'), readme.indexOf('### Exit codes'));
    const help = (await cli('--help')).stdout;
    const block = help.slice(help.indexOf('Commands:'));
    const commands = [...block.slice(0, block.indexOf('\n\n')).matchAll(/^ {2}([a-z]+)\b/gm)].map((match) => match[1]!);
    expect(commands).toEqual(['list', 'recover', 'status', 'doctor', 'install', 'uninstall', 'versions', 'restore', 'help']);
    for (const command of commands) expect(section, `README lacks "stack-backup ${command}"`).toContain(`stack-backup ${command}`);
    const options = [...help.slice(help.indexOf('Options:'), help.indexOf('Commands:')).matchAll(/--[a-z-]+/g)].map((match) => match[0]);
    for (const option of options) expect(section, `README lacks ${option}`).toContain(option);
    for (const [command, option] of [['status', '--max-age'], ['install', '--list'], ['restore', '--version'], ['restore', '--time'], ['restore', '--job'], ['restore', '--yes'], ['restore', '--to'], ['restore', '--prune']] as const) {
      expect((await cli('help', command)).stdout).toContain(option);
      expect(section).toContain(option);
    }
  });
});

describe('restore: what is refused, and dry runs that only print', () => {
  it('--job that is not the stack\'s: exit 2 before Duplicati is asked, with --yes, --dry-run or --to alike', async () => {
    const folder = root();
    for (const extra of [['--yes'], ['--dry-run'], ['--to', '/tmp/nowhere', '--yes']]) {
      const result = await cli('--root', folder, 'restore', 'app', '--job', 'nosuch', ...extra);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('--job nosuch: stack app has no such job (its jobs: app)');
    }
  });

  it('--prune --dry-run (either order, with --json) lists what it would remove, and removes nothing', async () => {
    const { existsSync, readFileSync } = await import('node:fs');
    const folder = root();
    const kept = path.join(folder, 'data', 'app.stack-backup-old-r1');
    mkdirSync(kept, { recursive: true });
    writeFileSync(path.join(kept, 'file'), 'old data');
    const list = { version: 1, copies: [{ stack: 'app', run: 'r1', at: '2026-12-01T00:00:00.000Z', what: 'old data', live: path.join(folder, 'data', 'app'), path: kept, identity: { filesystem: '1', inode: '2', born: '-', folder: path.dirname(kept) }, method: 'files' }] };
    mkdirSync(path.join(folder, 'logs'), { recursive: true });
    writeFileSync(path.join(folder, 'logs', 'restores.json'), JSON.stringify(list));
    const before = readFileSync(path.join(folder, 'logs', 'restores.json'), 'utf8');
    for (const argv of [['restore', '--prune', 'app', '--dry-run'], ['--dry-run', 'restore', 'app', '--prune']]) {
      const result = await cli('--root', folder, ...argv);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain(`1. remove the old data ${kept}`);
      expect(result.stdout).toContain('Dry run: nothing was touched.');
      expect(result.stdout).not.toMatch(/^removed /m);
    }
    const json = await cli('--root', folder, '--json', 'restore', '--prune', 'app', '--dry-run');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ root: folder, stack: 'app', dry_run: true, would_remove: [kept] });
    expect(readFileSync(path.join(kept, 'file'), 'utf8')).toBe('old data');
    expect(existsSync(kept)).toBe(true);
    expect(readFileSync(path.join(folder, 'logs', 'restores.json'), 'utf8')).toBe(before);
  });
});

describe('--dry-run with each flag a command accepts: printed, nothing written', () => {
  /** Every file (its size and mtime) and folder below the folders; the config cache, a cache of what was read, left out. */
  async function listing(...folders: string[]): Promise<string[]> {
    const { readdirSync, statSync } = await import('node:fs');
    const walk = (folder: string): string[] =>
      readdirSync(folder, { withFileTypes: true })
        .filter((entry) => entry.name !== '.config-cache.json')
        .flatMap((entry) => {
          const full = path.join(folder, entry.name);
          const stat = statSync(full);
          return entry.isDirectory() ? [`${full}/`, ...walk(full)] : [`${full} ${stat.size} ${stat.mtimeMs}`];
        });
    return folders.flatMap(walk).sort();
  }

  it.each([
    ['--dry-run', 'app'],
    ['--dry-run', 'all'],
    ['--dry-run', '--json', 'app'],
    ['--dry-run', '--quiet', 'app'],
    ['app', '--dry-run', '--verbose'],
    ['recover', '--dry-run'],
    ['recover', '--dry-run', '--quiet'],
    ['recover', '--dry-run', '--verbose'],
    ['install', '--dry-run'],
    ['install', '--dry-run', '--quiet'],
    ['install', '--dry-run', '--verbose'],
    ['uninstall', '--dry-run'],
    ['uninstall', '--dry-run', '--quiet'],
    ['uninstall', '--dry-run', '--verbose'],
    ['restore', 'app', '--prune', '--dry-run'],
    ['restore', 'app', '--prune', '--dry-run', '--json'],
    ['restore', 'app', '--prune', '--dry-run', '--quiet'],
    ['restore', 'app', '--prune', '--dry-run', '--verbose'],
  ].map((argv) => ({ line: argv.join(' '), argv })))('$line: exit 0, the root and the unit folder as they were', async ({ argv }) => {
    const folder = root({ 'logs/restores.json': JSON.stringify({ version: 1, copies: [] }) });
    const configHome = tempRoot();
    vi.stubEnv('XDG_CONFIG_HOME', configHome);
    const before = await listing(folder, configHome);
    const result = await cli('--root', folder, ...argv);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toBe('');
    expect(await listing(folder, configHome)).toEqual(before);
  });

  it.each([['--yes'], ['--dry-run'], ['--dry-run', '--json'], ['--dry-run', '--quiet'], ['--dry-run', '--verbose'], ['--dry-run', '--version', '0'], ['--dry-run', '--time', '2026-11-30'], ['--dry-run', '--to', '/tmp/picked']].map((flags) => ({ line: flags.join(' '), flags })))(
    'restore --job nosuch $line: exit 2, nothing written',
    async ({ flags }) => {
      const folder = root();
      const before = await listing(folder);
      const result = await cli('--root', folder, 'restore', 'app', '--job', 'nosuch', ...flags);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('--job nosuch: stack app has no such job');
      expect(await listing(folder)).toEqual(before);
    },
  );
});

describe('the first week on the command line (issue 30)', () => {
  it('a stack named with --version to back up is refused (exit 2), saying where a version goes; --version alone prints it', async () => {
    const folder = root();
    const refused = await cli('--root', folder, 'app', '--version', '2');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('stack-backup: --version prints stack-backup\'s version and takes no stack; to restore a version of app: stack-backup restore app --version N\n');
    expect(refused.stdout).toBe('');
    const version = await cli('--version');
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('a stack named by its file (app.yaml, stacks/app.yml) is that stack', async () => {
    const folder = root();
    for (const name of ['app.yaml', 'stacks/app.yaml', 'app-stack.service']) {
      const result = await cli('--root', folder, '--dry-run', name);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('app-stack.service');
    }
  });

  it('an unknown stack is exit 2 with the closest name offered, for a run, versions, restore and doctor', async () => {
    const folder = root();
    for (const args of [['--dry-run', 'ap'], ['versions', 'apo'], ['restore', 'aapp', '--dry-run'], ['doctor', 'appp']]) {
      const result = await cli('--root', folder, ...args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain('(did you mean "app"?)');
    }
    const far = await cli('--root', folder, '--dry-run', 'nextcloud');
    expect(far.code).toBe(2);
    expect(far.stderr).not.toContain('did you mean');
  });

  it("a command's help lists only the global options it honours", async () => {
    const list = await cli('list', '--help');
    expect(list.stdout).toContain('--json');
    expect(list.stdout).not.toContain('--dry-run');
    const recover = await cli('recover', '--help');
    expect(recover.stdout).toContain('--dry-run');
    expect(recover.stdout).not.toContain('--json');
  });
});
