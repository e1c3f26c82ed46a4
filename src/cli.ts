#!/usr/bin/env node
/**
 * The command line: only wiring. Each command lives in src/commands/; this file declares the
 * options, hands them over, and turns what comes back (or is thrown) into the exit code
 * through exit-codes.ts. Importing it runs nothing: main() runs only when this file is the
 * program.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { saveConfigCaches } from './config/load.js';
import { errorMessage } from './errors.js';
import { exitCodeFor } from './exit-codes.js';
import type { GlobalOptions } from './commands/options.js';

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('stack-backup');
  program
    .description(
      'Back up rootless-Podman stacks with Duplicati, one at a time: stop the stack, run its Duplicati jobs, and bring it back.',
    )
    .argument('[stacks...]', '"all", or stack names (a unit name such as cryptpad-stack.service is accepted)')
    .option('--root <dir>', 'folder with stacks/, hooks/, logs/ and stack-backup.yaml (default: $STACK_BACKUP_ROOT, else the current folder)')
    .option('--dry-run', 'print each stack\'s planned steps and touch nothing')
    .addHelpText(
      'after',
      `
Examples:
  stack-backup all                      every stack, in name order
  stack-backup cryptpad nextcloud       these stacks, in this order
  stack-backup --dry-run all            show what would be done
  stack-backup list --json              the configured stacks
  stack-backup status                   last runs; exit 1 when one failed or recovery is pending
  stack-backup recover                  put back what a killed run left stopped or frozen
  stack-backup doctor                   check everything a run needs, touching nothing

Exit codes: 0 every stack backed up; 1 a stack failed (each still restored per its policy);
2 usage or configuration error (nothing touched); 75 another run holds the lock;
129/130/143 ended by SIGHUP/SIGINT/SIGTERM after restoring the stack.`,
    )
    .showHelpAfterError()
    .exitOverride()
    .action(async (targets: string[], options: GlobalOptions) => {
      const { backupCommand } = await import('./commands/backup.js');
      setExitCode(await backupCommand(targets, options));
    });
  program
    .command('list')
    .description('list every stack with its unit, jobs, restore policy and freeze setting')
    .addOption(new Option('--json', 'print JSON'))
    .action(async function (this: Command) {
      const { listCommand } = await import('./commands/list.js');
      setExitCode(listCommand(this.optsWithGlobals()));
    });
  program
    .command('recover')
    .description('put back what a run that died (SIGKILL, power loss) left: start the units that were active, unfreeze sockets')
    .action(async function (this: Command) {
      const { recoverCommand } = await import('./commands/recover.js');
      setExitCode(await recoverCommand(this.optsWithGlobals()));
    });
  program
    .command('status')
    .description('per stack: last run, result, downtime, backup duration, last success, pending recovery; exit 1 when one needs a look')
    .addOption(new Option('--json', 'print JSON'))
    .action(async function (this: Command) {
      const { statusCommand } = await import('./commands/status.js');
      setExitCode(await statusCommand(this.optsWithGlobals()));
    });
  program
    .command('doctor')
    .description('check, touching nothing, everything a run needs: configs, permissions, Podman, Duplicati and its jobs, units, backup_mount, the timer')
    .argument('[stacks...]', 'only these stacks (default: every stack)')
    .action(async function (this: Command, targets: string[]) {
      const { doctorCommand } = await import('./commands/doctor.js');
      setExitCode(await doctorCommand(targets, this.optsWithGlobals()));
    });
  program
    .command('install')
    .description('write stack-backup.service and stack-backup.timer into ~/.config/systemd/user for this root, reload, and enable the timer')
    .option('--dry-run', 'print the unit files and touch nothing')
    .action(async function (this: Command) {
      const { installCommand } = await import('./commands/install.js');
      setExitCode(await installCommand(this.optsWithGlobals()));
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  try {
    await buildProgram((value) => (code = value)).parseAsync([...argv], { from: 'user' });
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

if (isProgram()) process.exitCode = await main(process.argv.slice(2));
