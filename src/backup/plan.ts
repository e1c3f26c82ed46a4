/**
 * The --dry-run plan: each stack's steps as the run will walk them (src/steps/sequence.ts),
 * with their exact commands, then the undos they register, last first, then verify. Touches
 * nothing: the list is printed, not applied.
 */
import type { GlobalConfig, StackConfig } from '../config/types.js';
import type { Step } from '../steps/sequence.js';
import { restoreTestActions, snapshotUndoName, stackSteps, verifyStep } from './sequence.js';

function numbered(lines: string[], step: Pick<Step, 'name' | 'actions'>, note = ''): void {
  lines.push(`  ${lines.filter((line) => /^ {2}\d+\. /.test(line)).length + 1}. ${step.name}${note}`);
  for (const action of step.actions) lines.push(`       ${action}`);
}

export function planStack(stack: StackConfig, global: GlobalConfig, podmanSocket: string): string[] {
  const mode = stack.snapshot ? ', snapshot mode (down only while its data is snapshotted)' : '';
  const lines: string[] = [`${stack.name} (${stack.file}), Podman API ${podmanSocket}, Duplicati driver ${global.duplicati.driver}${mode}`];
  const steps = stackSteps(stack, global);
  for (const step of steps) numbered(lines, step, step.undo ? ` (first registers its undo: ${step.undo.name})` : '');
  const reversed = steps.flatMap((step) => (step.undo ? [step.undo] : [])).reverse();
  // As the run does them: the stack first, the snapshots' removal last.
  const undos = [...reversed.filter((undo) => undo.name !== snapshotUndoName), ...reversed.filter((undo) => undo.name === snapshotUndoName)];
  if (undos.length > 0) {
    lines.push(
      stack.snapshot
        ? '  After a failure, the undos of the steps that ran and are not done yet, last first (a good run does them in "restore the stack" and "remove snapshots"):'
        : '  Then, after a good backup or any failure, the undos of the steps that ran, last first:',
    );
    for (const undo of undos) numbered(lines, undo);
  }
  const verify = verifyStep({ stack, global });
  if (verify) numbered(lines, verify, ' (only when everything before succeeded)');
  if (stack.restoreTest && !stack.snapshot) {
    numbered(lines, { name: 'restore test', actions: restoreTestActions(stack, global) }, ' (with the stack running again, when the backup succeeded; a failing test fails the run, the backup stays)');
  }
  return lines;
}
