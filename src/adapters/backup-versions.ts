/** What Duplicati keeps of a job (its versions and their files) and what a restore asks and answers: the drivers' common words. */

/** A version (fileset) of a backup job, as Duplicati lists them (ListFilesetsHandler.cs). */
export interface BackupVersion {
  /** 0: the newest. */
  version: number;
  /** When it was made, ISO 8601 UTC (Duplicati keeps whole seconds). */
  time: string;
  /** Its regular files and their size, where the driver is told them (else undefined). */
  fileCount: number | undefined;
  sizeBytes: number | undefined;
  /** The time as Duplicati wrote it (REST: with its offset), passed back verbatim to ask for exactly this version. */
  duplicatiTime: string;
}

/** One entry of a version: a folder (its path ends in "/"), a regular file, or a symlink. */
export interface VersionEntry {
  path: string;
  kind: 'folder' | 'file' | 'symlink';
  /** Regular files: the size; otherwise undefined. */
  size: number | undefined;
}

/** What a restore asks of Duplicati. */
export interface RestoreRequest {
  job: string;
  backupId: string;
  version: BackupVersion;
  /**
   * Duplicati filters, as the container sees the paths: `[regex]` for a folder with all below it
   * (`[/source/app/.*]`, what the web UI sends for a folder), exact paths for single files.
   */
  filters: string[];
  /** An empty folder, as the container sees it. */
  restorePath: string;
  /** A name of this run's, for what the restore keeps in the container meanwhile (exec). */
  tag: string;
}

/** How a restore ended, in Duplicati's words (RestoreResults, ResultClasses.cs). */
export interface RestoreOutcome {
  /** ParsedResult; Fatal when the restore threw (task Failed, CLI exit 100). */
  result: 'Success' | 'Warning' | 'Error' | 'Fatal';
  /** Regular files written and symlinks made (RestoredFiles). */
  restoredFiles: number;
  sizeBytes: number | undefined;
  /** Warnings and errors, Duplicati's words. */
  messages: string[];
}

