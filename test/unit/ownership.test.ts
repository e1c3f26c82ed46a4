/**
 * Never remove what is not ours, at the configuration and run level: snapshot paths that
 * overlap by real path (links, other stacks) are refused before anything is touched, and a
 * unit that another root's run holds is not touched by this one (exit 75, naming that root).
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadGlobalConfig, selectStacks } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { exitCodeForReport, exitCodes } from '../../src/exit-codes.js';
import { removeTempRoots, tempRoot, twoStackRun } from '../fakes.js';

afterAll(removeTempRoots);

function snapshotFile(paths: Array<{ source: string; target: string }>): string {
  return `duplicati_jobs: [app]\nsnapshot:\n  driver: reflink\n  paths:\n${paths.map((entry) => `    - source: ${entry.source}\n      target: ${entry.target}\n`).join('')}`;
}

/** A root whose data lives in it: data/app, data/other, and a snapshots folder. */
function rootWithData(): string {
  const root = tempRoot();
  for (const folder of ['data/app', 'data/other', 'snapshots']) mkdirSync(path.join(root, folder), { recursive: true });
  return root;
}

function select(root: string, files: Record<string, string>, targets: string[]) {
  mkdirSync(path.join(root, 'stacks'), { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(path.join(root, 'stacks', name), text);
  }
  return selectStacks(root, loadGlobalConfig(root, {}), targets);
}

describe('snapshot paths, compared by real path across all stacks', () => {
  it('refuses two paths of one stack whose targets are one folder through a link, naming both keys', () => {
    const root = rootWithData();
    symlinkSync(path.join(root, 'snapshots'), path.join(root, 'snaplink'));
    const files = {
      'app.yaml': snapshotFile([
        { source: path.join(root, 'data/app'), target: path.join(root, 'snapshots/app') },
        { source: path.join(root, 'data/other'), target: path.join(root, 'snaplink/app') },
      ]),
    };
    expect(() => select(root, files, ['app'])).toThrow(ConfigError);
    expect(() => select(root, files, ['app'])).toThrow(/stacks\/app\.yaml: snapshot\.paths\[0\]\.target: .* is the same folder as target .*snaplink\/app \(really .*snapshots\/app\) \(stacks\/app\.yaml snapshot\.paths\[1\]\.target\)/);
  });

  it('refuses two stacks with one target, even when only one of them is run', () => {
    const root = rootWithData();
    const files = {
      'app.yaml': snapshotFile([{ source: path.join(root, 'data/app'), target: path.join(root, 'snapshots/shared') }]),
      'other.yaml': snapshotFile([{ source: path.join(root, 'data/other'), target: path.join(root, 'snapshots/shared') }]),
    };
    expect(() => select(root, files, ['app'])).toThrow(/stacks\/app\.yaml: snapshot\.paths\[0\]\.target: .* is the same folder as target .* \(stacks\/other\.yaml snapshot\.paths\[0\]\.target\)/);
  });

  it('refuses a target whose folder is a link into the source', () => {
    const root = rootWithData();
    symlinkSync(path.join(root, 'data/app'), path.join(root, 'into-source'));
    const files = { 'app.yaml': snapshotFile([{ source: path.join(root, 'data/app'), target: path.join(root, 'into-source/snap') }]) };
    expect(() => select(root, files, ['app'])).toThrow(/snapshot\.paths\[0\]\.target: .*into-source\/snap \(really .*data\/app\/snap\) lies inside source .*data\/app/);
  });

  it("refuses a target inside another stack's source, and one holding it", () => {
    const root = rootWithData();
    const inside = {
      'app.yaml': snapshotFile([{ source: path.join(root, 'data/app'), target: path.join(root, 'data/other/snap') }]),
      'other.yaml': snapshotFile([{ source: path.join(root, 'data/other'), target: path.join(root, 'snapshots/other') }]),
    };
    expect(() => select(root, inside, ['app'])).toThrow(/lies inside source .*data\/other \(stacks\/other\.yaml snapshot\.paths\[0\]\.source\)/);
    const holding = {
      'app.yaml': snapshotFile([{ source: path.join(root, 'data/app'), target: path.join(root, 'snapshots/app') }]),
      'other.yaml': snapshotFile([{ source: path.join(root, 'snapshots/app/x'), target: path.join(root, 'snapshots/other') }]),
    };
    expect(() => select(root, holding, ['other'])).toThrow(/contains source/);
  });

  it('a source reached through a link is snapshotted where it really is; stacks apart are accepted', () => {
    const root = rootWithData();
    symlinkSync(path.join(root, 'data/app'), path.join(root, 'app-link'));
    const files = {
      'app.yaml': snapshotFile([{ source: path.join(root, 'app-link'), target: path.join(root, 'snapshots/app') }]),
      'other.yaml': snapshotFile([{ source: path.join(root, 'data/other'), target: path.join(root, 'snapshots/other') }]),
    };
    const [app] = select(root, files, ['app']);
    expect(app!.snapshot!.paths[0]!.source).toBe(path.join(root, 'data/app'));
  });
});

describe('one unit, one run', () => {
  it("a unit another root's run holds is not touched: the stack is not run, named, the others are, and the exit code is 75", async () => {
    const run = twoStackRun();
    run.world.heldUnits.set('alpha-stack.service', '/home/me/other-root');
    const report = await run.run();
    expect(report.locked).toEqual([{ stack: 'alpha', reason: 'another stack-backup run (root /home/me/other-root) is backing up or restoring unit alpha-stack.service now' }]);
    expect(run.world.actions.some((action) => action.includes('alpha'))).toBe(false);
    expect(report.results.map((result) => [result.stack, result.ok])).toEqual([['beta', true]]);
    expect(run.output.join('')).toMatch(/alpha\s+not run\s+.*root \/home\/me\/other-root/);
    expect(exitCodeForReport(report, new AbortController().signal)).toBe(exitCodes.locked);
    // Each unit's lock is taken for its stack and given back after it.
    expect(run.world.locksTaken).toEqual(['beta-stack.service']);
    expect(run.world.heldUnits.get('alpha-stack.service')).toBe('/home/me/other-root');
    expect(run.world.heldUnits.has('beta-stack.service')).toBe(false);
  });

  it('a lost lock ends the run: the stack under way is restored, no other stack starts, exit 1', async () => {
    const run = twoStackRun();
    const original = run.world.adapters;
    run.world.adapters = () => {
      const adapters = original.call(run.world);
      return {
        ...adapters,
        lockUnit: async (unit: string, onLost: (error: Error) => void) => {
          const release = await adapters.lockUnit(unit, onLost);
          // The lock's file is removed from under the first stack, mid-run.
          if (unit === 'alpha-stack.service') run.world.onAction = (action) => action === 'stop alpha-stack.service' && onLost(new Error('lock file removed'));
          return release;
        },
      };
    };
    const report = await run.run();
    expect(report.results.map((result) => [result.stack, result.ok])).toEqual([['alpha', false]]);
    expect(report.results[0]!.error).toMatch(/the lock of unit alpha-stack\.service was lost \(lock file removed\)/);
    expect(report.skipped).toEqual(['beta']);
    expect(run.world.state('alpha-stack.service')).toBe('active');
    expect(exitCodeForReport(report, new AbortController().signal)).toBe(exitCodes.stackFailed);
  });
});
