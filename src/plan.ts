/** The --dry-run plan: each stack's steps with the exact commands and units, touching nothing. */
import type { GlobalConfig, StackConfig } from './config/types.js';
import type { HookPhase } from './config/schema.js';
import { formatSeconds } from './report.js';

export function planStack(stack: StackConfig, global: GlobalConfig, podmanSocket: string): string[] {
  const lines: string[] = [];
  const add = (text: string) => lines.push(`  ${lines.length + 1}. ${text}`);
  const hooks = (phase: HookPhase) => {
    for (const command of stack.hooks[phase]) add(`${phase} hook: sh -c ${JSON.stringify(command)}`);
  };
  const duplicati = global.duplicati;
  const exec = `podman exec ${duplicati.container} ${duplicati.serverUtil}`;
  if (global.backupMount) add(`check that backup_mount ${global.backupMount} can be read`);
  add(`wait until Duplicati is idle and not paused: ${exec} status`);
  hooks('pre_stop');
  if (stack.freeze) {
    add(`record the state of ${[stack.freeze.socket, stack.freeze.service].filter(Boolean).join(' and ')}`);
    add(`systemctl --user stop ${stack.freeze.socket}`);
    if (stack.freeze.service) add(`systemctl --user stop ${stack.freeze.service}`);
  }
  add(`record whether ${stack.unit} is active`);
  add(`systemctl --user stop ${stack.unit} (stop_timeout ${formatSeconds(stack.stopTimeoutMs)})`);
  add(
    `wait until no container labelled ${stack.selector.key}=${stack.selector.value} runs (Podman API ${podmanSocket}, stop_timeout ${formatSeconds(stack.stopTimeoutMs)})`,
  );
  hooks('post_stop');
  hooks('pre_backup');
  for (const job of stack.jobs) {
    add(
      `${exec} run -- ${job} (run_timeout ${formatSeconds(duplicati.runTimeoutMs)}), then ${exec} status (every 0.1 s, slowing to every ${formatSeconds(duplicati.pollIntervalMs)}) until the job has run (wait_timeout ${formatSeconds(duplicati.waitTimeoutMs)})`,
    );
  }
  hooks('post_backup');
  hooks('pre_start');
  add(
    stack.restorePolicy === 'always'
      ? `systemctl --user start ${stack.unit} (restore_policy always; start_timeout ${formatSeconds(stack.startTimeoutMs)})`
      : `systemctl --user start ${stack.unit} if it was active before (restore_policy previous; start_timeout ${formatSeconds(stack.startTimeoutMs)})`,
  );
  if (stack.freeze) {
    add(`systemctl --user start ${stack.freeze.socket} if it was active before`);
    if (stack.freeze.service) add(`systemctl --user start ${stack.freeze.service} if it was active before`);
  }
  hooks('post_start');
  hooks('verify');
  return [`${stack.name} (${stack.file})`, ...lines];
}
