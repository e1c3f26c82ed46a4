/**
 * src/config/permissions.ts: configuration and hook files that other users could change are
 * refused, as ssh refuses a loose authorized_keys. Real files in a temp root; owners other
 * than the test's own user need chown, so those tests run as root (as the suite does in CI).
 */
import { chmodSync, chownSync, mkdirSync, writeFileSync, type Stats } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertOnlyUserCanWrite, currentIdentity, looseness, type Identity } from '../../src/config/permissions.js';
import { ConfigError } from '../../src/errors.js';
import { exitCodeFor, exitCodes } from '../../src/exit-codes.js';
import { removeTempRoots, tempRoot } from '../fakes.js';

afterAll(removeTempRoots);

const me: Identity = { uid: 1000, gid: 1000 };
const stats = (uid: number, gid: number, mode: number): Stats => ({ uid, gid, mode }) as Stats;
const isRoot = process.getuid?.() === 0;

describe('looseness', () => {
  it('accepts what only the user (or root) can write', () => {
    expect(looseness(stats(1000, 1000, 0o100644), me)).toBeUndefined();
    expect(looseness(stats(1000, 1000, 0o100600), me)).toBeUndefined();
    expect(looseness(stats(1000, 1000, 0o040700), me)).toBeUndefined();
    expect(looseness(stats(0, 0, 0o100644), me)).toBeUndefined();
    expect(looseness(stats(0, 0, 0o040755), me)).toBeUndefined();
  });

  it('accepts a group-writable file in the user\'s own group (a private group, as Debian makes)', () => {
    expect(looseness(stats(1000, 1000, 0o100664), me)).toBeUndefined();
    expect(looseness(stats(1000, 1000, 0o040775), me)).toBeUndefined();
  });

  it('refuses a world-writable file or folder, naming its mode', () => {
    expect(looseness(stats(1000, 1000, 0o100666), me)).toBe('every user can write it (mode 0666)');
    expect(looseness(stats(1000, 1000, 0o100602), me)).toBe('every user can write it (mode 0602)');
    expect(looseness(stats(0, 0, 0o040777), me)).toBe('every user can write it (mode 0777)');
  });

  it('refuses a group-writable file of another group', () => {
    expect(looseness(stats(1000, 50, 0o100664), me)).toBe('group 50 can write it (mode 0664)');
    expect(looseness(stats(0, 50, 0o100660), me)).toBe('group 50 can write it (mode 0660)');
  });

  it('refuses a file owned by another user, whatever its mode', () => {
    expect(looseness(stats(1001, 1000, 0o100600), me)).toBe('it belongs to user 1001, not to you');
    expect(looseness(stats(1001, 1001, 0o100644), me)).toBe('it belongs to user 1001, not to you');
  });
});

/** A root as `stack-backup install` leaves it: only the user can write anything. */
function tidyRoot(): string {
  const root = tempRoot({
    'stack-backup.yaml': 'duplicati: {}\n',
    'stacks/app.yaml': 'duplicati_jobs: [app]\n',
    'hooks/app/maintenance.sh': '#!/bin/sh\n',
    'hooks/app/deep/warm.sh': '#!/bin/sh\n',
    'logs/journal.json': '{"version":1,"entries":[]}\n',
  });
  for (const folder of ['', 'stacks', 'hooks', 'hooks/app', 'hooks/app/deep', 'logs']) chmodSync(path.join(root, folder), 0o700);
  for (const file of ['stack-backup.yaml', 'stacks/app.yaml', 'logs/journal.json']) chmodSync(path.join(root, file), 0o600);
  for (const file of ['hooks/app/maintenance.sh', 'hooks/app/deep/warm.sh']) chmodSync(path.join(root, file), 0o700);
  return root;
}

/** The ConfigError assertOnlyUserCanWrite throws, which must be one. */
function refusal(root: string, stackFiles: string[] = [path.join(root, 'stacks/app.yaml')]): ConfigError {
  try {
    assertOnlyUserCanWrite(root, stackFiles);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect(exitCodeFor(error)).toBe(exitCodes.usage);
    return error as ConfigError;
  }
  throw new Error('expected the root to be refused');
}

describe('assertOnlyUserCanWrite', () => {
  it('accepts a tidy root, and one without hooks/ or logs/ yet', () => {
    const root = tidyRoot();
    expect(() => assertOnlyUserCanWrite(root, [path.join(root, 'stacks/app.yaml')])).not.toThrow();
    const bare = tempRoot({ 'stack-backup.yaml': '', 'stacks/app.yaml': '' });
    chmodSync(bare, 0o700);
    expect(() => assertOnlyUserCanWrite(bare, [path.join(bare, 'stacks/app.yaml')])).not.toThrow();
  });

  it.each([
    ['.', ''],
    ['stacks', 'stacks'],
    ['stacks/app.yaml', 'stacks/app.yaml'],
    ['stack-backup.yaml', 'stack-backup.yaml'],
    ['hooks', 'hooks'],
    ['hooks/app/maintenance.sh', 'hooks/app/maintenance.sh'],
    ['hooks/app/deep/warm.sh', 'hooks/app/deep/warm.sh'],
    ['logs', 'logs'],
    ['logs/journal.json', 'logs/journal.json'],
  ])('refuses a world-writable %s, naming it relative to the root and saying how to fix it', (shown, relative) => {
    const root = tidyRoot();
    const target = path.join(root, relative);
    chmodSync(target, 0o777);
    const error = refusal(root);
    expect(error.file).toBe(shown);
    expect(error.message).toBe(`${shown}: refused: every user can write it (mode 0777), and stack-backup runs hooks as you. Fix: chmod go-w ${target}`);
  });

  it('checks the stack files it is given, wherever they are', () => {
    const root = tidyRoot();
    const other = path.join(root, 'stacks', 'other.yaml');
    writeFileSync(other, '');
    chmodSync(other, 0o666);
    expect(() => assertOnlyUserCanWrite(root, [path.join(root, 'stacks/app.yaml')])).not.toThrow();
    expect(refusal(root, [other]).message).toMatch(/^stacks\/other\.yaml: refused: every user can write it \(mode 0666\).*chmod go-w /);
  });

  it('ignores other files in logs/: the logs themselves hold no commands', () => {
    const root = tidyRoot();
    const log = path.join(root, 'logs', 'backup-app-2024-01-01.log');
    writeFileSync(log, '');
    chmodSync(log, 0o666);
    expect(() => assertOnlyUserCanWrite(root, [])).not.toThrow();
  });

  it.runIf(isRoot)('refuses a group-writable file of a foreign group, and accepts it in the user\'s own group', () => {
    const root = tidyRoot();
    const file = path.join(root, 'stack-backup.yaml');
    chmodSync(file, 0o664);
    chownSync(file, currentIdentity().uid, 4242);
    expect(refusal(root).message).toBe(`stack-backup.yaml: refused: group 4242 can write it (mode 0664), and stack-backup runs hooks as you. Fix: chmod go-w ${file}`);
    chownSync(file, currentIdentity().uid, currentIdentity().gid);
    expect(() => assertOnlyUserCanWrite(root, [])).not.toThrow();
  });

  it.runIf(isRoot)('refuses a hook owned by another user, even one only its owner can write', () => {
    const root = tidyRoot();
    const hook = path.join(root, 'hooks', 'app', 'maintenance.sh');
    chownSync(hook, 4242, 4242);
    chmodSync(hook, 0o700);
    const error = refusal(root);
    expect(error.file).toBe('hooks/app/maintenance.sh');
    expect(error.message).toContain('refused: it belongs to user 4242, not to you');
  });

  it.runIf(isRoot)('accepts files owned by root, for a user other than root', () => {
    const root = tidyRoot();
    const user = { uid: 4242, gid: 4242 };
    // The tidy root belongs to root (the test's user); everything else to the user.
    chownSync(path.join(root, 'stacks', 'app.yaml'), 4242, 4242);
    expect(() => assertOnlyUserCanWrite(root, [path.join(root, 'stacks/app.yaml')], user)).not.toThrow();
    chownSync(path.join(root, 'stacks', 'app.yaml'), 4343, 4242);
    expect(() => assertOnlyUserCanWrite(root, [path.join(root, 'stacks/app.yaml')], user)).toThrow(/^stacks\/app\.yaml: refused: it belongs to user 4343/);
  });

  it('refuses a hooks folder others can write although every hook in it is tidy', () => {
    const root = tidyRoot();
    mkdirSync(path.join(root, 'hooks', 'shared'));
    chmodSync(path.join(root, 'hooks', 'shared'), 0o1777);
    expect(refusal(root).message).toMatch(/^hooks\/shared: refused: every user can write it \(mode 1777\)/);
  });
});
