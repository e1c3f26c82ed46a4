/** How the process ends once a command's work is done. */

const graceMs = 2000;

/**
 * Lets the process end by itself once nothing is pending, and otherwise ends it a little later:
 * a child the kernel will not let die (a read on a dead network mount), or any other leftover
 * handle, must not keep a finished run alive, since a oneshot service that never ends holds
 * the lock against the next night's run. The exit code is already set in process.exitCode.
 */
export function exitWhenDone(): void {
  setTimeout(() => process.exit(), graceMs).unref();
}
