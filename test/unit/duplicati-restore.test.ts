/**
 * The drivers' restore side, as pure parsing and command lines: duplicati-cli's listings and
 * restore output (Duplicati/CommandLine/CLI/Commands.cs, ConsoleOutput.cs), the job's export
 * (ServerUtil Commands/Export.cs), and the REST API's restore result row (ResultClasses.cs). The
 * secrets of an export never reach a command line.
 */
import { describe, expect, it } from 'vitest';
import { restoreOutcomeFromLog } from '../../src/adapters/duplicati-api.js';
import { cliArgv, exportArgv, parameterLines, parseCliTime, parseContents, parseExport, parseFilesets, parseRestoreOutput, parseSize, publicUrl } from '../../src/adapters/duplicati-cli.js';

const exported = JSON.stringify({
  CreatedByVersion: '2.3.0.4',
  Backup: {
    ID: '1',
    Name: 'composeapp',
    TargetURL: 's3://bucket/app?auth-username=me&auth-password=secret',
    DBPath: '/data/Duplicati/LPESJSBMZT.sqlite',
    Sources: ['/source/composeapp/'],
    Settings: [
      { Filter: '', Name: 'encryption-module', Value: 'aes', Argument: null },
      { Filter: '', Name: 'passphrase', Value: 'the-passphrase', Argument: null },
      { Filter: '*.tmp', Name: 'skip-files-larger-than', Value: '1GB', Argument: null },
    ],
  },
});

describe("the exec driver's restore through duplicati-cli", () => {
  it("picks the job out of the export by its ID (a name may contain the ID), with its storage, database and options", () => {
    const other = exported.replace('"ID":"1"', '"ID":"11"').replace('composeapp', 'app1');
    const job = parseExport(`Connecting to http://localhost:8200/...\n${other}\n@stack-backup:end\n${exported}\n@stack-backup:end\n`, '1')!;
    expect(job).toEqual({
      id: '1',
      name: 'composeapp',
      targetUrl: 's3://bucket/app?auth-username=me&auth-password=secret',
      dbPath: '/data/Duplicati/LPESJSBMZT.sqlite',
      sources: ['/source/composeapp/'],
      filters: [],
      options: ['--encryption-module=aes', '--passphrase=the-passphrase'],
    });
    expect(parseExport(other, '1')).toBeUndefined();
  });

  it('keeps every secret off the command line: the storage URL without credentials there, the rest in the parameters file', () => {
    const job = parseExport(exported, '1')!;
    expect(publicUrl(job.targetUrl)).toBe('s3://bucket/app');
    expect(publicUrl('s3://me:pw@bucket/app')).toBe('s3://bucket/app');
    expect(parameterLines(job)).toBe('--target=s3://bucket/app?auth-username=me&auth-password=secret\n--encryption-module=aes\n--passphrase=the-passphrase\n--dbpath=/data/Duplicati/LPESJSBMZT.sqlite\n');
    const argv = cliArgv({ container: 'duplicati' }, 'run-1', 600, ['restore', publicUrl(job.targetUrl), '[/source/composeapp/.*]']);
    expect(argv.join(' ')).not.toMatch(/the-passphrase|secret/);
    expect(argv.slice(0, 4)).toEqual(['podman', 'exec', '-i', 'duplicati']);
    expect(argv.join(' ')).toContain('timeout -s TERM 600 duplicati-cli "$@" --parameters-file="$d/parameters"');
    expect(exportArgv({ container: 'duplicati', serverUtil: 'duplicati-server-util' }, '1').at(-1)).toBe('1');
  });

  it('reads the versions and their times as the official image prints them (invariant culture, UTC) and as en-US does', () => {
    expect(parseFilesets('Listing filesets:\n0\t: 12/05/2026 10:41:19 (7 files, 103 bytes)\n1\t: 12/05/2026 10:41:18 (7 files, 1.50 KiB)\n')).toEqual([
      { version: 0, time: '2026-12-05T10:41:19.000Z', fileCount: 7, sizeBytes: 103, duplicatiTime: '12/05/2026 10:41:19' },
      { version: 1, time: '2026-12-05T10:41:18.000Z', fileCount: 7, sizeBytes: 1536, duplicatiTime: '12/05/2026 10:41:18' },
    ]);
    expect(parseCliTime('7/1/2026 10:00:00 PM')).toBe('2026-07-01T22:00:00.000Z');
    expect(parseCliTime('7/1/2026 12:00:00 AM')).toBe('2026-07-01T00:00:00.000Z');
    expect(parseSize('1,024.00 MiB')).toBe(1024 ** 3);
    expect(parseSize('-1 bytes')).toBe(-1);
  });

  it('reads what a version holds: folders, files with their size, symlinks (-1 bytes)', () => {
    const listing = 'Listing contents 0 (12/05/2026 10:41:19):\n/source/composeapp/ \n/source/composeapp/bin/run.sh (26 bytes)\n/source/composeapp/current (-1 bytes)\n/source/composeapp/my file (1).txt (2.00 KiB)\n';
    expect(parseContents(listing)).toEqual([
      { path: '/source/composeapp/', kind: 'folder', size: undefined },
      { path: '/source/composeapp/bin/run.sh', kind: 'file', size: 26 },
      { path: '/source/composeapp/current', kind: 'symlink', size: undefined },
      { path: '/source/composeapp/my file (1).txt', kind: 'file', size: 2048 },
    ]);
  });

  it("judges a restore by its exit code and by every line that is not its progress (errors alone exit 0)", () => {
    const progress = 'Restore started at 12/05/2026 10:41:05\nChecking remote backup ...\n  Listing remote folder ...\n  7 files need to be restored (109 bytes)\nVerifying restored files ...\nRestored 7 (109 bytes) files to /restore/x\nDuration of restore: 00:00:00\n';
    expect(parseRestoreOutput(0, progress, '')).toEqual({ result: 'Success', restoredFiles: 7, sizeBytes: 109, messages: [] });
    expect(parseRestoreOutput(0, `${progress}Failed to patch file "/restore/x/a"\n`, '')).toMatchObject({ result: 'Error', messages: ['Failed to patch file "/restore/x/a"'] });
    expect(parseRestoreOutput(2, `${progress}Failed to apply metadata to file: "/restore/x/db"\n`, '')).toMatchObject({ result: 'Warning' });
    expect(parseRestoreOutput(100, 'Restore started at 12/05/2026 10:41:05\n', '\nErrorID: FolderMissing\nThe folder /backups/x does not exist\n')).toEqual({
      result: 'Fatal',
      restoredFiles: 0,
      sizeBytes: undefined,
      messages: ['ErrorID: FolderMissing', 'The folder /backups/x does not exist'],
    });
    expect(parseRestoreOutput(137, '', '').messages).toEqual(['duplicati-cli ended with exit 137 and said nothing']);
  });
});

describe("the api driver's restore result", () => {
  const row = (message: Record<string, unknown>, timestamp = 1_800_000_000) => ({ Type: 'Result', Timestamp: timestamp, Message: JSON.stringify(message) });

  it('takes the newest Restore result written since the request, never a backup result or an older restore', () => {
    const rows = [
      row({ MainOperation: 'Backup', ParsedResult: 'Success' }),
      row({ MainOperation: 'Restore', ParsedResult: 'Warning', RestoredFiles: 6, SizeOfRestoredFiles: 120, Warnings: ['Skipping creation of symlink /r/x -> /etc/passwd because it points outside the restore target'], Errors: [] }),
      row({ MainOperation: 'Restore', ParsedResult: 'Success', RestoredFiles: 7 }, 1_700_000_000),
    ];
    expect(restoreOutcomeFromLog(rows, 1_800_000_000_000)).toEqual({
      result: 'Warning',
      restoredFiles: 6,
      sizeBytes: 120,
      messages: ['Skipping creation of symlink /r/x -> /etc/passwd because it points outside the restore target'],
    });
    expect(restoreOutcomeFromLog([rows[2]!], 1_800_000_000_000)).toBeUndefined();
  });
});
