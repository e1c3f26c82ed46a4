/** `stack-backup doctor`: every check a run needs, touching nothing. */
import { exitCodes } from '../exit-codes.js';
import { rootOf, type GlobalOptions } from './options.js';
import { whenAborted, withSignals } from './signals.js';

export async function doctorCommand(targets: string[], options: GlobalOptions): Promise<number> {
  const root = rootOf(options);
  const [{ runDoctor, formatChecks }, real, { createContainerEngine }, { checkFolder }] = await Promise.all([
    import('../doctor.js'),
    import('../adapters/real.js'),
    import('../adapters/podman.js'),
    import('../adapters/files.js'),
  ]);
  return withSignals((text) => process.stderr.write(`${text}\n`), 'stopping the checks', async (signal) => {
    // The checks only read, and each is bounded: on a signal nothing needs undoing, so the
    // command ends at once (the commands they started are in their own process groups and
    // bounded by their timeouts).
    const checks = await Promise.race([
      runDoctor(root, targets, {
        environment: process.env,
        systemd: real.createRecoveryAdapters().systemd,
        createEngine: createContainerEngine,
        createDuplicati: (global) => real.createDuplicati(global.duplicati),
        checkFolder,
      }),
      whenAborted(signal),
    ]);
    process.stdout.write(formatChecks(checks));
    const failed = checks.filter((check) => !check.ok).length;
    process.stdout.write(failed === 0 ? 'All checks passed.\n' : `${failed} check${failed === 1 ? '' : 's'} failed.\n`);
    return failed === 0 ? exitCodes.success : exitCodes.stackFailed;
  });
}
