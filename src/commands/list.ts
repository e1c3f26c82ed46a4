/** `stack-backup list`: every stack with its unit, jobs, restore policy and freeze setting. */
import { listStackNames, loadGlobalConfig, loadStack } from '../config/load.js';
import { exitCodes } from '../exit-codes.js';
import { secondsOf, writeJson } from '../report/json-output.js';
import { formatTable } from '../report/report.js';
import { rootOf, type GlobalOptions } from './options.js';

export function listCommand(options: GlobalOptions): number {
  const root = rootOf(options);
  const global = loadGlobalConfig(root, process.env);
  const stacks = listStackNames(root).map((name) => loadStack(root, name, global));
  if (options.json) {
    // Changed on purpose in format version 1: an object with `version`, no longer a bare array.
    writeJson(process.stdout, {
      root,
      stacks: stacks.map((stack) => ({
        name: stack.name,
        file: stack.file,
        unit: stack.unit,
        jobs: stack.jobs,
        restore_policy: stack.restorePolicy,
        freeze_ondemand: stack.freeze !== undefined,
        ondemand_socket: stack.freeze?.socket ?? null,
        ondemand_service: stack.freeze?.service ?? null,
        container_label: `${stack.selector.key}=${stack.selector.value}`,
        // Neither label set: the units' own Quadlet label finds containers too (stack-containers.ts).
        quadlet_label: !stack.selectorSet,
        stop_timeout_seconds: secondsOf(stack.stopTimeoutMs),
        start_timeout_seconds: secondsOf(stack.startTimeoutMs),
        hook_timeout_seconds: secondsOf(stack.hookTimeoutMs),
      })),
    });
    return exitCodes.success;
  }
  const rows = stacks.map((stack) => [
    stack.name,
    stack.unit,
    stack.jobs.join(','),
    stack.restorePolicy,
    stack.freeze ? `yes (${[stack.freeze.socket, stack.freeze.service].filter(Boolean).join(', ')})` : 'no',
  ]);
  process.stdout.write(`${formatTable(['STACK', 'UNIT', 'JOBS', 'RESTORE', 'FREEZE'], rows).join('\n')}\n`);
  if (rows.length === 0) process.stdout.write(`(no stacks in ${root}/stacks)\n`);
  return exitCodes.success;
}
