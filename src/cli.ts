#!/usr/bin/env node
/**
 * The command line: only wiring. Each command lives in src/commands/; this file declares the
 * options, hands them over, and turns what comes back (or is thrown) into the exit code
 * through exit-codes.ts. Importing it runs nothing: main() runs only when this file is the
 * program.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { saveConfigCaches } from './config/load.js';
import { exitWhenDone } from './adapters/exit.js';
import { UsageError, errorMessage } from './errors.js';
import { exitCodeFor } from './exit-codes.js';
import { assertHonoured, type GlobalOption, type GlobalOptions } from './commands/options.js';

/** The package's version, read once from package.json beside dist/. */
function packageVersion(): string {
  try {
    const file = fileURLToPath(new URL('../package.json', import.meta.url));
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Which global options each command honours (--root: all of them). */
const honours: Record<string, readonly GlobalOption[]> = {
  backup: ['dryRun', 'json', 'quiet', 'verbose'],
  restore: ['dryRun', 'json', 'quiet', 'verbose'],
  versions: ['json', 'quiet', 'verbose'],
  list: ['json', 'quiet', 'verbose'],
  status: ['json', 'quiet', 'verbose'],
  doctor: ['json', 'quiet', 'verbose'],
  recover: ['dryRun', 'quiet', 'verbose'],
  install: ['dryRun', 'quiet', 'verbose'],
  uninstall: ['dryRun', 'quiet', 'verbose'],
};

/** The options of the program and the command together, checked against what the command honours. */
function optionsFor(command: Command, name: string): GlobalOptions & Record<string, unknown> {
  const options = command.optsWithGlobals<GlobalOptions & Record<string, unknown>>();
  assertHonoured(name, options, honours[name]!);
  return options;
}

/**
 * The global options, declared on the program and on each command, so they work before or after
 * it. A command's help shows only those it honours; the others stay declared (hidden), so that
 * one given anyway is refused with a message that says which it takes (assertHonoured, exit 2).
 */
function withGlobalOptions(command: Command, honoured: readonly GlobalOption[] = ['dryRun', 'json', 'quiet', 'verbose']): Command {
  const global = (flags: string, description: string, name?: GlobalOption) => command.addOption(new Option(flags, description).hideHelp(name !== undefined && !honoured.includes(name)));
  global('--root <dir>', 'folder with stacks/, hooks/, logs/ and stack-backup.yaml (default: $STACK_BACKUP_ROOT, else the current folder)');
  global('--dry-run', 'print what would be done and touch nothing', 'dryRun');
  global('--json', 'print one JSON document on standard output', 'json');
  global('-q, --quiet', 'on the terminal: errors and the summary only', 'quiet');
  global('-v, --verbose', 'on the terminal: also the debug lines that go to the log', 'verbose');
  return command;
}

/**
 * The program's --version prints its version; restore's --version N chooses a backup version. A
 * --version given with a stack to back up ("stack-backup plainapp --version 2") would print the
 * program's version and back nothing up: refused, saying where a version goes.
 */
function assertVersionPlacement(argv: readonly string[], subcommands: ReadonlySet<string>): void {
  const end = argv.indexOf('--');
  const args = end < 0 ? argv : argv.slice(0, end);
  if (!args.some((arg) => arg === '--version' || arg === '-V' || arg.startsWith('--version='))) return;
  let first: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--root') {
      index++;
      continue;
    }
    if (!arg.startsWith('-')) {
      first = arg;
      break;
    }
  }
  if (first === undefined || subcommands.has(first) || first === 'help') return;
  throw new UsageError(`--version prints stack-backup's version and takes no stack; to restore a version of ${first}: stack-backup restore ${first} --version N`);
}

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('stack-backup');
  // A command's own options come after it (restore's --version N is not the program's --version):
  // the program reads its options before the command, each command its own and the global ones after.
  program.enablePositionalOptions();
  const command = (name: string) => withGlobalOptions(program.command(name), honours[name]);
  withGlobalOptions(program);
  program
    .description(
      'Back up rootless-Podman stacks with Duplicati, one at a time: stop the stack, run its Duplicati jobs, and bring it back.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .argument('[stacks...]', '"all", or stack names (a unit name such as cryptpad-stack.service is accepted; after "--" a name may begin with "-")')
    .helpCommand('help [command]', 'show help for a command')
    .addHelpText(
      'after',
      `
The global options work before or after the command; one the command cannot honour is exit 2.
"--" ends the options: what follows is a stack name even when it begins with "-".

Examples:
  stack-backup all                      every stack, in name order
  stack-backup cryptpad nextcloud       these stacks, in this order
  stack-backup --dry-run all            show what would be done
  stack-backup --json all               the run's summary as JSON on standard output
  stack-backup list --json              the configured stacks
  stack-backup status                   the verdict, then per stack the last run and the last 14 days
  stack-backup status --max-age 26h     exit 1 unless every stack succeeded within 26 hours
  stack-backup recover                  put back what a killed run left stopped or frozen
  stack-backup doctor                   check everything a run needs, touching nothing
  stack-backup install                  the nightly timer for this root (install --list: all roots)
  stack-backup versions nextcloud       each job's versions: number (0 newest), time, files, size
  stack-backup restore nextcloud        bring the stack back from its newest version (asks first)
  stack-backup restore nextcloud --time 2026-11-30 --yes   each job's newest version of that day
  stack-backup restore nextcloud --to /tmp/nc   its data into a folder; the stack untouched
  stack-backup restore --prune nextcloud  remove the old data restores kept beside it

Exit codes: 0 every stack backed up; 1 a stack failed (each still restored per its policy);
2 usage or configuration error (nothing touched); 75 another run holds the lock;
129/130/143 ended by SIGHUP/SIGINT/SIGTERM after restoring the stack.`,
    )
    .showHelpAfterError()
    .exitOverride()
    .action(async function (this: Command, targets: string[]) {
      const options = optionsFor(this, 'backup');
      const { backupCommand } = await import('./commands/backup.js');
      setExitCode(await backupCommand(targets, options));
    });
  command('list')
    .description('list every stack with its unit, jobs, restore policy and freeze setting')
    .action(async function (this: Command) {
      const options = optionsFor(this, 'list');
      const { listCommand } = await import('./commands/list.js');
      setExitCode(listCommand(options));
    });
  command('recover')
    .description('put back what a run that died (SIGKILL, power loss) left: start the units that were active, unfreeze sockets')
    .action(async function (this: Command) {
      const options = optionsFor(this, 'recover');
      const { recoverCommand } = await import('./commands/recover.js');
      setExitCode(await recoverCommand(options));
    });
  command('status')
    .description(
      'first line a verdict over every stack ("5 stacks: all backed up within 26 h"); then per stack: last run, the last 14 days (+ backed up, x failed, . no run), result, downtime, backup duration, last success, pending recovery; exit 1 when one needs a look',
    )
    .option('--max-age <duration>', 'exit 1 when a stack\'s last successful backup is older than this (e.g. 26h, 90m, 2d) or missing; also the verdict\'s "overdue" age (default 26h)')
    .option('--max-untested-age <duration>', 'exit 1 when a stack with a restore test has had no passing one within this (e.g. 8d) or never')
    .action(async function (this: Command) {
      const options = optionsFor(this, 'status');
      const { statusCommand } = await import('./commands/status.js');
      setExitCode(await statusCommand(options));
    });
  command('doctor')
    .description('check, touching nothing, everything a run needs: configs, permissions, Podman, Duplicati and its jobs, units, backup_mount, the timer')
    .argument('[stacks...]', 'only these stacks (default: every stack)')
    .action(async function (this: Command, targets: string[]) {
      const options = optionsFor(this, 'doctor');
      const { doctorCommand } = await import('./commands/doctor.js');
      setExitCode(await doctorCommand(targets, options));
    });
  command('install')
    .description('write and enable this root\'s timer and service, stack-backup@<root>.timer, in ~/.config/systemd/user')
    .option('--list', 'list the roots that have a timer installed, and touch nothing')
    .action(async function (this: Command) {
      const options = optionsFor(this, 'install');
      const { installCommand } = await import('./commands/install.js');
      setExitCode(await installCommand(options));
    });
  command('uninstall')
    .description('disable and remove this root\'s timer and service')
    .action(async function (this: Command) {
      const options = optionsFor(this, 'uninstall');
      const { uninstallCommand } = await import('./commands/install.js');
      setExitCode(await uninstallCommand(options));
    });
  command('versions')
    .description("each job's versions of a stack, as Duplicati keeps them: number (0 is the newest), time, files, size")
    .argument('<stack>', 'the stack')
    .action(async function (this: Command, target: string) {
      const options = optionsFor(this, 'versions');
      const { versionsCommand } = await import('./commands/versions.js');
      setExitCode(await versionsCommand(target, options));
    });
  command('restore')
    .description(
      'bring a stack back from its backup: stop it, have Duplicati restore the version into a new folder beside each data path, swap it into place, start, verify; the old data is kept beside it, and put back if anything fails',
    )
    .argument('<stack>', 'the stack')
    .option('--version <n>', 'this version of the job (0 is the newest; see versions); with several jobs, name one with --job')
    .option('--time <time>', "each job's newest version at or before this time (ISO 8601: 2026-11-30, the whole day; 2026-11-30T02:00, local time)")
    .option('--job <job>', 'restore this job of the stack only')
    .option('--yes', 'do not ask (needed without a terminal)')
    .option('--to <dir>', "restore the stack's data into this folder (absent or empty), one folder per data path; the stack is not touched")
    .option('--prune', 'remove what earlier restores kept beside the data (old data, restored copies), only where it is still what they kept')
    .addHelpText(
      'after',
      `
Exit codes: 0 restored and verified; 1 failed (the stack is on its old data again, named in the summary);
2 usage, a version that does not exist, or no confirmation (nothing touched); 75 a backup or restore runs;
130/143 ended by SIGINT/SIGTERM after putting the stack back.`,
    )
    .action(async function (this: Command, target: string) {
      const options = optionsFor(this, 'restore');
      const { restoreCommand } = await import('./commands/restore.js');
      setExitCode(await restoreCommand(target, options));
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  try {
    const program = buildProgram((value) => (code = value));
    assertVersionPlacement(argv, new Set(program.commands.map((command) => command.name())));
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    code = exitCodeFor(error);
    if (!(error instanceof CommanderError)) process.stderr.write(`stack-backup: ${errorMessage(error)}\n`);
  }
  saveConfigCaches();
  return code;
}

/** Whether this module is the program node started (directly, or through an `npm link` symlink). */
function isProgram(): boolean {
  const started = process.argv[1];
  if (!started) return false;
  try {
    return realpathSync(started) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isProgram()) {
  process.exitCode = await main(process.argv.slice(2));
  // A handle still open (a probe the kernel will not let die) must not keep the process alive.
  exitWhenDone();
}
