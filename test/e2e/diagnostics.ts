/**
 * Makes a failing end-to-end test explain itself: after a failed test, and before the next one
 * resets the root, print what the run logged and the states of the world's units and containers.
 * Loaded for every e2e file (vitest.config.ts setupFiles).
 */
import { afterEach } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { asUser, root, world } from './world.js';

const units = [
  'composeapp-stack.service',
  'plainapp-stack.service',
  'ondemand-stack.service',
  'ondemand-proxy.socket',
  'ondemand-proxy.service',
  world.DUPLICATI_UNIT ?? 'sbworld-duplicati.service',
  world.DUPLICATI_API_UNIT ?? 'sbworld-duplicati-api.service',
];

/** Every log file of the root's logs/ folder; the root is emptied before each test, so all are this test's. */
function runLogs(): string {
  const folder = path.join(root, 'logs');
  if (!existsSync(folder)) return '(no logs folder)';
  const files = readdirSync(folder).filter((entry) => entry.endsWith('.log') || entry.endsWith('.json'));
  if (files.length === 0) return '(no log files)';
  return files
    .map((file) => {
      const lines = readFileSync(path.join(folder, file), 'utf8').split('\n').filter(Boolean);
      // The end of a long log is what explains a failure.
      return `--- ${file} (${lines.length} lines)\n${lines.slice(-80).join('\n')}`;
    })
    .join('\n');
}

async function worldStates(): Promise<string> {
  const states = await asUser(['systemctl', '--user', 'show', '--property=Id,ActiveState,SubState,Result', ...units]);
  const containers = await asUser(['podman', 'ps', '--all', '--format', '{{.Names}} {{.State}} {{.Status}} {{.Labels}}']);
  const standin = world.STANDIN_EVENTS && existsSync(world.STANDIN_EVENTS) ? readFileSync(world.STANDIN_EVENTS, 'utf8').split('\n').slice(-20).join('\n') : '';
  return `units:\n${states.stdout.trim().replace(/\n\n/g, '\n--\n')}\ncontainers:\n${containers.stdout.trim()}${containers.stderr.trim()}\nstand-in events (last 20):\n${standin}`;
}

afterEach(async (context) => {
  if (context.task.result?.state !== 'fail') return;
  let report: string;
  try {
    report = `${runLogs()}\n${await worldStates()}`;
  } catch (error) {
    report = `could not gather the world's state: ${(error as Error).message}`;
  }
  process.stderr.write(`\n===== why "${context.task.name}" failed: the run's logs and the world's state =====\n${report}\n===== end =====\n`);
});
