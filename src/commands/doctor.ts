/** `stack-backup doctor`: every check a run needs, touching nothing. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { exitCodes } from '../exit-codes.js';
import { unitDirectory } from '../host/install.js';
import { writeJson } from '../report/json-output.js';
import { rootOf, type GlobalOptions } from './options.js';
import { whenAborted, withSignals } from './signals.js';

export async function doctorCommand(targets: string[], options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  const [{ runDoctor, formatChecks }, real, { createContainerEngine }, { checkFolder }] = await Promise.all([
    import('../host/doctor.js'),
    import('../adapters/real.js'),
    import('../adapters/podman.js'),
    import('../adapters/files.js'),
  ]);
  const code = await withSignals((text) => process.stderr.write(`${text}\n`), 'stopping the checks', async (signal) => {
    // The checks only read, and each is bounded: on a signal nothing needs undoing, so the
    // command ends at once (the commands they started are in their own process groups and
    // bounded by their timeouts).
    const checks = await Promise.race([
      runDoctor(root, targets, {
        environment: process.env,
        systemd: real.createSystemdManager(),
        createEngine: createContainerEngine,
        createDuplicati: (global) => real.createDuplicati(global.duplicati),
        checkFolder,
        snapshots: real.createRealSnapshots(),
        readUnitFile: (name) => {
          try {
            return readFileSync(path.join(unitDirectory(process.env), name), 'utf8');
          } catch {
            return undefined;
          }
        },
      }),
      whenAborted(signal),
    ]);
    const failed = checks.filter((check) => !check.ok).length;
    if (options.json) {
      writeJson(process.stdout, {
        root,
        ok: failed === 0,
        checks: checks.map((check) => ({ ok: check.ok, ...(check.warning ? { warning: true } : {}), what: check.what, problem: check.problem ?? null })),
      });
    } else {
      process.stdout.write(formatChecks(checks));
      process.stdout.write(failed === 0 ? 'All checks passed.\n' : `${failed} check${failed === 1 ? '' : 's'} failed.\n`);
    }
    return failed === 0 ? exitCodes.success : exitCodes.stackFailed;
  });
  // After a signal the checks still under way (each bounded, none changing anything) must not
  // keep the process alive: it ends a second later whatever they wait for.
  if (code >= 128) setTimeout(() => process.exit(code), 1000).unref();
  return code;
}
