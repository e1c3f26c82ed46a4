// REST API stand-in for the part of Duplicati's /api/v1 that stack-backup's `api` driver
// uses. Plain Node (18+), no dependencies. It shares ONE queue and state with the busybox
// stand-in (duplicati/worker.sh, duplicati/duplicati-server-util): it reads and changes
// the same files in the control folder, under the same mkdir lock (state/lock, stale
// after 3 s), so a job enqueued here meets the same worker, queue, de-duplication, pause,
// pickup delay and duration, and gets the same CLEAN/DIRTY record.
//
// Shapes and status codes follow duplicati/duplicati Duplicati/WebserverCore/ (see
// test/world/README.md, "REST API stand-in", for the list and the source of each).
//
// Environment: STANDIN_CONTROL (the control folder, default
// /var/tmp/stack-backup-world/duplicati), API_LISTEN (default 127.0.0.1:8200).
// Control files read on every use: api_password (default sbworld-secret), token_ttl
// (seconds, default 900), token_clock_skew (seconds, default 5), paused, jobs,
// results.log (one line per finished job, written by worker.sh). Private state in
// <control>/api/: jwt-key, families.json, event-id.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const CTL = process.env.STANDIN_CONTROL || '/var/tmp/stack-backup-world/duplicati';
const ST = path.join(CTL, 'state');
const LOCK = path.join(ST, 'lock');
const API_DIR = path.join(CTL, 'api');
const LISTEN = process.env.API_LISTEN || '127.0.0.1:8200';
const POLL_MS = 50;
/** The version the stand-in claims (control file `version`, as standin-lib.sh standin_version). */
const versionName = () => setting('version', '2.3.0.4_stable_2026-07-09');
/** The claimed version is at least NEED ("2.3.0.2"); where releases differ, the stand-in behaves as the claimed one. */
function versionAtLeast(need) {
  const have = versionName().split(/[._-]/).map(Number);
  const want = need.split('.').map(Number);
  for (let i = 0; i < 4; i += 1) {
    if ((have[i] || 0) !== want[i]) return (have[i] || 0) > want[i];
  }
  return true;
}
const versionNumber = () => versionName().split('_')[0];
const ISSUER = 'https://duplicati';
// Interrupted: a task that was stopped or aborted (written by worker.sh and by this server).
const OUTCOMES = new Set(['Success', 'Warning', 'Error', 'Fatal', 'Interrupted']);
// A restore's line in results.log: "<task|-> <backup> <name> <start> <end> Restore-<ParsedResult|Fatal> restores/<key>.result"
const RESTORE_OUTCOMES = new Set(['Restore-Success', 'Restore-Warning', 'Restore-Error', 'Restore-Fatal']);
const STORAGE = path.join(CTL, 'storage');
const TASK_CACHE_MAX = 100; // QueueRunnerService.MAX_TASK_RESULT_CACHE_SIZE

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...args) => console.log(new Date().toISOString(), ...args);

// ------------------------------------------------------------------ control files

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** First line of <control>/NAME without blanks (as standin-lib.sh `setting`), or DEFAULT. */
function setting(name, def) {
  const v = readText(path.join(CTL, name)).split('\n')[0].replace(/[ \t\r]/g, '');
  return v === '' ? def : v;
}

function numberSetting(name, def) {
  const v = Number(setting(name, ''));
  return Number.isFinite(v) && setting(name, '') !== '' ? v : def;
}

/** Flag file exists and does not say off/0/false/no (standin-lib.sh `flag_on`). */
function flagOn(name) {
  const file = path.join(CTL, name);
  if (!fs.existsSync(file)) return false;
  const v = readText(file).split('\n')[0];
  return !['off', '0', 'false', 'no'].includes(v);
}

function apiPassword() {
  const first = readText(path.join(CTL, 'api_password')).split('\n')[0].replace(/\r$/, '');
  return first === '' ? 'sbworld-secret' : first;
}

/** Jobs file: "ID NAME SOURCE [DURATION]" per line, '#' comments. */
function readJobs() {
  const jobs = [];
  for (const line of readText(path.join(CTL, 'jobs')).split('\n')) {
    if (/^[ \t]*(#|$)/.test(line)) continue;
    const [id, name, source, duration] = line.trim().split(/\s+/);
    if (id) jobs.push({ id, name: name ?? '', source: source ?? '', duration });
  }
  return jobs;
}

const jobById = (id) => readJobs().find((job) => job.id === id);

/** A job's source folder as Duplicati lists it: an absolute SOURCE as is, else under /source; with the trailing '/'. */
const sourcePath = (job) => `${job.source.startsWith('/') ? job.source.replace(/\/+$/, '') : `/source/${job.source}`}/`;

function writeAtomic(file, text) {
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function appendEvent(text) {
  fs.appendFileSync(path.join(CTL, 'events.log'), `${Date.now()} ${text}\n`);
}

// ------------------------------------------------------------------ the shared lock

// One holder at a time inside this process, then the mkdir lock shared with the
// shell scripts (standin-lib.sh lock/unlock, standin.sh).
let chain = Promise.resolve();
let inProcessBusy = false;

function withLock(fn) {
  const run = chain.then(async () => {
    inProcessBusy = true;
    try {
      await acquireFsLock();
      try {
        return fn();
      } finally {
        releaseFsLock();
      }
    } finally {
      inProcessBusy = false;
    }
  });
  chain = run.catch(() => undefined);
  return run;
}

function tryMkdirLock() {
  try {
    fs.mkdirSync(LOCK);
    return true;
  } catch (error) {
    if (error.code === 'ENOENT') fs.mkdirSync(ST, { recursive: true });
    else if (error.code !== 'EEXIST') throw error;
    return false;
  }
}

async function acquireFsLock() {
  for (;;) {
    if (tryMkdirLock()) return;
    try {
      if (Date.now() - fs.statSync(LOCK).mtimeMs >= 3000) fs.rmdirSync(LOCK);
    } catch {
      // gone meanwhile
    }
    await sleep(20);
  }
}

function releaseFsLock() {
  try {
    fs.rmdirSync(LOCK);
  } catch {
    // already gone (a reset or a stale-lock breaker)
  }
}

/** A queue line: "TASK BACKUPID ENQUEUE_MS" and " restore" for a restore. */
const queueLine = (q) => `${q.task} ${q.backup} ${q.enqueuedAt}${q.kind === 'restore' ? ' restore' : ''}\n`;

/** Queue and active task; call with the lock held. */
function readQueueState() {
  const active = readText(path.join(ST, 'active')).trim().split(/\s+/);
  const queue = readText(path.join(ST, 'queue'))
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => /^\d+$/.test(parts[0] ?? ''))
    .map(([task, backup, enq, kind]) => ({ task: Number(task), backup, enqueuedAt: Number(enq ?? 0), kind: kind ?? 'backup' }));
  return {
    active: /^\d+$/.test(active[0] ?? '') ? { task: Number(active[0]), backup: active[1], startedAt: Number(active[2] ?? 0), kind: active[3] ?? 'backup' } : null,
    queue,
  };
}

// ------------------------------------------------------------------ results (worker.sh)

let resultsKey = '';
let results = { byBackup: new Map(), byTask: new Map(), hasWarning: false, hasError: false, count: 0, notifying: 0 };

/**
 * results.log: "<task> <backup_id> <name> <start_ms> <end_ms> <Success|Warning|Error|Fatal> [message of a Fatal one]",
 * and for a restore "<task|-> ... Restore-<ParsedResult|Fatal> restores/<key>.result" ("-": a duplicati-cli restore
 * that used the job's database; it writes its Result into that database's log, but is no server task).
 */
function loadResults() {
  const file = path.join(CTL, 'results.log');
  let stat = null;
  try {
    stat = fs.statSync(file);
  } catch {
    // no results yet
  }
  const key = stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : 'none';
  if (key === resultsKey) return false;
  resultsKey = key;
  const text = stat ? readText(file) : '';
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  const byBackup = new Map();
  const byTask = new Map();
  let hasWarning = false;
  let hasError = false;
  let count = 0;
  let notifying = 0;
  for (const line of complete.split('\n')) {
    const [task, backup, name, start, end, outcome, ...rest] = line.trim().split(/\s+/);
    if (RESTORE_OUTCOMES.has(outcome) && (task === '-' || /^\d+$/.test(task ?? ''))) {
      const run = { task: task === '-' ? null : Number(task), backup, name, start: Number(start), end: Number(end), outcome: outcome.slice('Restore-'.length), restore: true, resultFile: rest.join(' ') };
      count += 1;
      if (!byBackup.has(backup)) byBackup.set(backup, []);
      byBackup.get(backup).push(run);
      if (run.task === null) continue;
      byTask.set(run.task, run);
      if (run.outcome === 'Warning') hasWarning = true;
      if (run.outcome === 'Error' || run.outcome === 'Fatal') hasError = true;
      if (run.outcome !== 'Success') notifying += 1;
      continue;
    }
    if (!/^\d+$/.test(task ?? '') || !OUTCOMES.has(outcome)) continue;
    const run = { task: Number(task), backup, name, start: Number(start), end: Number(end), outcome, message: rest.join(' ') };
    count += 1;
    if (!byBackup.has(backup)) byBackup.set(backup, []);
    byBackup.get(backup).push(run);
    byTask.set(run.task, run);
    if (outcome === 'Interrupted') continue;
    if (outcome === 'Warning') hasWarning = true;
    if (outcome === 'Error' || outcome === 'Fatal') hasError = true;
    if (outcome !== 'Success') notifying += 1;
  }
  // The queue runner keeps the results of the last tasks only (QueueRunnerService.AddTaskResult).
  const ids = [...byTask.keys()].sort((a, b) => a - b);
  while (ids.length >= TASK_CACHE_MAX) byTask.delete(ids.shift());
  const previous = results;
  results = { byBackup, byTask, hasWarning, hasError, count, notifying };
  if (count !== previous.count) dataUpdateId += 1;
  if (notifying > previous.notifying) notificationUpdateId += 1;
  return true;
}

// ------------------------------------------------------------------ event ids, polling

const EVENT_FILE = path.join(API_DIR, 'event-id');
let eventId = 0;
let dataUpdateId = 0;
let notificationUpdateId = 0;
let signature = '';
let waiters = new Set();

function bumpEvent() {
  eventId += 1;
  try {
    writeAtomic(EVENT_FILE, `${eventId}\n`);
  } catch {
    // not fatal
  }
  const current = waiters;
  waiters = new Set();
  for (const wake of current) wake();
}

function stateSignature(state, paused) {
  return JSON.stringify([paused, state.active?.task ?? null, state.active?.backup ?? null, state.queue.map((q) => [q.task, q.backup]), resultsKey]);
}

/** Called with a fresh queue state: a change since the last look is one new event. */
function observe(state) {
  const paused = flagOn('paused');
  loadResults();
  const sig = stateSignature(state, paused);
  if (signature !== '' && sig !== signature) bumpEvent();
  signature = sig;
  return { ...state, paused };
}

async function snapshot() {
  return observe(await withLock(readQueueState));
}

// Background look every POLL_MS: skipped while someone holds the lock.
async function poll() {
  for (;;) {
    await sleep(POLL_MS);
    if (inProcessBusy) continue;
    try {
      if (!tryMkdirLock()) continue;
      let state;
      try {
        state = readQueueState();
      } finally {
        releaseFsLock();
      }
      observe(state);
    } catch (error) {
      log('poll:', error.message);
    }
  }
}

/** Resolves when the event id moves or after MS. */
function waitForEvent(ms, onClose) {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      waiters.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    waiters.add(wake);
    onClose(wake);
  });
}

// ------------------------------------------------------------------ formats

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Library.Utility.Utility.SerializeDateTime: yyyyMMdd'T'HHmmss'Z' (UTC). */
function serializeDateTime(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
}

/** A UTC DateTime as System.Text.Json / Newtonsoft write it (fraction without trailing zeros). */
function isoDate(ms) {
  return new Date(ms).toISOString().replace(/\.(\d*?)0*Z$/, (_, f) => (f ? `.${f}Z` : 'Z'));
}

/** TimeSpan.ToString(): hh:mm:ss[.fffffff]. */
function timeSpan(ms) {
  const total = Math.max(0, Math.round(ms));
  const s = Math.floor(total / 1000);
  const frac = total % 1000;
  const days = Math.floor(s / 86400);
  const base = `${pad(Math.floor(s / 3600) % 24)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  return `${days ? `${days}.` : ''}${base}${frac ? `.${pad(frac, 3)}0000` : ''}`;
}

/** LogEntry.AsString: "yyyy-MM-dd HH:mm:ss zz - [Level-Tag-Id]: message". */
function logLine(ms, tag, message) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +00 - [${tag}]: ${message}`;
}

// A Fatal run's exception message: the one the worker recorded (e.g. a missing source folder), else the outcome setting's.
const fatalMessage = (run) => run.message || `The stand-in was told to end ${run.name} with Fatal (outcome setting)`;

/** The "Result" message a backup writes into its LogData table (BackupResults, serialized). */
function resultMessage(run, versions, interrupted = false) {
  const messages = [
    logLine(run.start, 'Information-Duplicati.Library.Main.Controller-StartingOperation', 'The operation Backup has started'),
  ];
  const warnings = [];
  const errors = [];
  if (run.outcome === 'Warning')
    warnings.push(logLine(run.end, 'Warning-Duplicati.Library.Main.Operation.Backup.FileBlockProcessor.FileEntry-PathProcessingFailed', `Failed to process path: /source/${run.name}/ (stand-in outcome Warning)`));
  if (run.outcome === 'Error')
    errors.push(logLine(run.end, 'Error-Duplicati.Library.Main.Operation.BackupHandler-StandinError', `Stand-in outcome Error for ${run.name}`));
  if (run.outcome === 'Fatal')
    errors.push(logLine(run.end, 'Error-Duplicati.Library.Main.Controller-FailedOperation', `The operation Backup has failed\nDuplicati.Library.Interface.UserInformationException: ${fatalMessage(run)}`));
  else messages.push(logLine(run.end, 'Information-Duplicati.Library.Main.Controller-CompletedOperation', 'The operation Backup has completed'));
  const duration = timeSpan(run.end - run.start);
  return JSON.stringify({
    DeletedFiles: 0,
    DeletedFolders: 0,
    ModifiedFiles: 0,
    ExaminedFiles: 0,
    OpenedFiles: 0,
    AddedFiles: 0,
    SizeOfModifiedFiles: 0,
    SizeOfAddedFiles: 0,
    SizeOfExaminedFiles: 0,
    SizeOfOpenedFiles: 0,
    NotProcessedFiles: 0,
    AddedFolders: 0,
    TooLargeFiles: 0,
    FilesWithError: 0,
    TimestampChangedFiles: 0,
    ModifiedFolders: 0,
    ModifiedSymlinks: 0,
    AddedSymlinks: 0,
    DeletedSymlinks: 0,
    PartialBackup: false,
    Dryrun: false,
    MainOperation: 'Backup',
    CompactResults: null,
    VacuumResults: null,
    DeleteResults: null,
    RepairResults: null,
    TestResults: null,
    ParsedResult: run.outcome,
    Interrupted: interrupted,
    Version: `${versionNumber()} (${versionName()})`,
    EndTime: isoDate(run.end),
    BeginTime: isoDate(run.start),
    Duration: duration,
    MessagesActualLength: messages.length,
    WarningsActualLength: warnings.length,
    ErrorsActualLength: errors.length,
    Messages: messages,
    Warnings: warnings,
    Errors: errors,
    BackendStatistics: {
      RemoteCalls: 0,
      BytesUploaded: 0,
      BytesDownloaded: 0,
      FilesUploaded: 0,
      FilesDownloaded: 0,
      FilesDeleted: 0,
      FoldersCreated: 0,
      RetryAttempts: 0,
      UnknownFileSize: 0,
      UnknownFileCount: 0,
      KnownFileCount: 0,
      KnownFileSize: 0,
      LastBackupDate: isoDate(run.start),
      BackupListCount: versions,
      TotalQuotaSpace: 0,
      FreeQuotaSpace: 0,
      AssignedQuotaSpace: -1,
      ReportedQuotaError: false,
      ReportedQuotaWarning: false,
      MainOperation: 'Backup',
      ParsedResult: 'Success',
      Interrupted: false,
      Version: `${versionNumber()} (${versionName()})`,
      EndTime: '0001-01-01T00:00:00',
      BeginTime: isoDate(run.start),
      Duration: '00:00:00',
      MessagesActualLength: 0,
      WarningsActualLength: 0,
      ErrorsActualLength: 0,
      Messages: null,
      Warnings: null,
      Errors: null,
    },
  });
}

/**
 * Per backup: the LogData rows (one "Result" row per run, oldest first) and the
 * metadata Runner.UpdateMetadata / UpdateMetadataError leave behind. A run that
 * returned a result (Success, Warning, Error) updates LastBackupStarted/Finished/
 * Duration; a Fatal one threw, so only LastErrorDate/LastErrorMessage change.
 */
function backupHistory(backupId) {
  const runs = results.byBackup.get(backupId) ?? [];
  const metadata = {};
  const rows = [];
  let versions = 0;
  runs.forEach((run, index) => {
    if (run.restore) {
      // A restore's Result goes into the database it used (LocalDatabase.WriteResultsAndCommit). A
      // server restore updates LastRestore*, or LastError* when it threw (Runner.cs UpdateMetadataBase,
      // UpdateMetadataError); a duplicati-cli restore leaves the server's record alone.
      const result = readRestoreResult(run.resultFile);
      rows.push({ ID: index + 1, OperationID: index + 1, Timestamp: Math.floor(run.end / 1000), Type: 'Result', Message: restoreMessage(run, result), Exception: null });
      if (run.task === null) return;
      if (run.outcome === 'Fatal') {
        metadata.LastErrorDate = serializeDateTime(run.end);
        metadata.LastErrorMessage = result.ExceptionMessage || 'The restore failed';
        return;
      }
      Object.assign(metadata, {
        LastRestoreDuration: timeSpan(run.end - run.start),
        LastRestoreStarted: serializeDateTime(run.start),
        LastRestoreFinished: serializeDateTime(run.end),
      });
      return;
    }
    if (run.outcome === 'Interrupted') {
      // A stopped or aborted backup: its result says Interrupted and the record is left
      // alone (Runner.cs UpdateMetadataBase skips LastBackup* when result.Interrupted).
      rows.push({ ID: index + 1, OperationID: index + 1, Timestamp: Math.floor(run.end / 1000), Type: 'Result', Message: resultMessage({ ...run, outcome: 'Success' }, versions, true), Exception: null });
      return;
    }
    if (run.outcome !== 'Fatal') versions += 1;
    rows.push({
      ID: index + 1,
      OperationID: index + 1,
      Timestamp: Math.floor(run.end / 1000),
      Type: 'Result',
      Message: resultMessage(run, versions),
      Exception: null,
    });
    if (run.outcome === 'Fatal') {
      metadata.LastErrorDate = serializeDateTime(run.end);
      metadata.LastErrorMessage = fatalMessage(run);
      return;
    }
    Object.assign(metadata, {
      TotalQuotaSpace: '0',
      FreeQuotaSpace: '0',
      AssignedQuotaSpace: '-1',
      TargetFilesSize: '0',
      TargetFilesCount: '0',
      TargetSizeString: '0 bytes',
      SourceFilesSize: '0',
      SourceFilesCount: '0',
      SourceSizeString: '0 bytes',
      LastBackupStarted: serializeDateTime(run.start),
      LastBackupFinished: serializeDateTime(run.end),
      LastBackupDuration: timeSpan(run.end - run.start),
    });
  });
  // The newest version's time and the number of versions follow the stored versions
  // (UpdateMetadataStatistics: LastBackupDate, BackupListCount from the backend statistics).
  const times = filesetTimes(backupId);
  if (times.length > 0) Object.assign(metadata, { LastBackupDate: serializeDateTime(times[0] * 1000), BackupListCount: String(times.length) });
  return { rows, metadata };
}

function dbName(name) {
  const hash = crypto.createHash('sha256').update(name).digest();
  return [...hash.subarray(0, 10)].map((b) => String.fromCharCode(65 + (b % 26))).join('');
}

/** Dto.BackupDto (Backups.cs ExecuteGet / BackupGet.cs ExecuteGet). */
/**
 * Dto.BackupDto. GET backup/{id} masks password settings (Backup.MaskSensitiveInformation, PASSWORD_PLACEHOLDER);
 * GET backups lists no settings at all (Connection.Backups loads none; BackupListService.List). The database
 * exists once the job has run (DBPathExists).
 */
function backupDto(job, { list = false } = {}) {
  return {
    ID: job.id,
    Name: job.name,
    Description: '',
    Tags: [],
    TargetURL: `file:///backups/${job.name}`,
    DBPath: `/data/Duplicati/${dbName(job.name)}.sqlite`,
    DBPathExists: fs.existsSync(path.join(CTL, 'db', `${dbName(job.name)}.sqlite`)),
    Sources: [sourcePath(job)],
    Settings: list ? null : jobSettings(job).map(([name, value]) => ({ Name: name, Value: PASSWORD_SETTINGS.has(name) ? '***************' : value, Filter: '', Argument: null })),
    Filters: [],
    Metadata: backupHistory(job.id).metadata,
    IsTemporary: false,
    IsUnencryptedOrPassphraseStored: true,
  };
}

// ------------------------------------------------------------------ versions and restores

/** The times (epoch seconds) of the backup's stored versions, newest (version 0) first (duplicati/versions.sh). */
function filesetTimes(backupId) {
  try {
    return fs
      .readdirSync(path.join(STORAGE, String(backupId), 'filesets'))
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    return [];
  }
}

/** One version's manifest: {type, size, uid, gid, mode, mtime, create, md5, owner, group, attr, target, path} per entry. */
function readManifest(backupId, time) {
  const names = ['type', 'size', 'uid', 'gid', 'mode', 'mtime', 'create', 'md5', 'owner', 'group', 'attr', 'target', 'path'];
  return readText(path.join(STORAGE, String(backupId), 'filesets', String(time)))
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const parts = line.split('\t');
      const entry = Object.fromEntries(names.slice(0, 12).map((name, i) => [name, parts[i]]));
      entry.path = parts.slice(12).join('\t');
      entry.size = Number(entry.size);
      return entry;
    });
}

/** Control file timezone ("+02:00"): the container's UTC offset in seconds (default UTC, as the official image). */
function utcOffset() {
  const m = /^([+-])(\d\d):(\d\d)$/.exec(setting('timezone', '+00:00'));
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60) : 0;
}

/** A DateTime of Kind Local as System.Text.Json writes it: "2026-07-01T10:00:00+00:00". */
function localDateTime(seconds) {
  const offset = utcOffset();
  const d = new Date((seconds + offset) * 1000);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${sign}${pad(Math.floor(abs / 3600))}:${pad(Math.floor(abs / 60) % 60)}`;
}

/**
 * Library.Utility.Timeparser.ParseTimeInterval(text, DateTime.Now) as epoch seconds, or null when it throws.
 * The same forms as parse_time in duplicati/standin-lib.sh: empty or "now"; "1D2h" (now plus that); a bare number
 * (now plus that many SECONDS, not an epoch time); a date (DateTime.TryParse, invariant culture, local time when
 * it has no zone); yyyyMMddTHHmmssZ.
 */
function parseTime(text, nowMs = Date.now()) {
  const now = Math.floor(nowMs / 1000);
  const s = String(text ?? '').trim();
  if (s === '' || s.toLowerCase() === 'now') return now;
  if (/^(\d+[smhDWMY])+$/.test(s)) {
    const units = { s: 1, m: 60, h: 3600, D: 86400, W: 604800, M: 2592000, Y: 31536000 };
    let t = now;
    for (const [, n, u] of s.matchAll(/(\d+)([smhDWMY])/g)) t += Number(n) * units[u];
    return t;
  }
  if (/^-?\d+$/.test(s)) return now + Number(s);
  let m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (m) return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
  let rest = s;
  let zone = null;
  const z = /(Z|[+-]\d\d:?\d\d)$/.exec(rest);
  if (z) {
    zone = z[1];
    rest = rest.slice(0, z.index);
  }
  let y, mo, d, H = 0, M = 0, S = 0;
  if ((m = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$/.exec(rest))) {
    [y, mo, d] = [+m[1], +m[2], +m[3]];
    if (m[4] !== undefined) [H, M, S] = [+m[4], +m[5], +(m[6] ?? 0)];
  } else if ((m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?(?: ?([AaPp][Mm]))?)?$/.exec(rest))) {
    [mo, d, y] = [+m[1], +m[2], +m[3]];
    if (m[4] !== undefined) [H, M, S] = [+m[4], +m[5], +(m[6] ?? 0)];
    if (m[7] && /p/i.test(m[7]) && H < 12) H += 12;
    if (m[7] && /a/i.test(m[7]) && H === 12) H = 0;
  } else return null;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || H > 23 || M > 59 || S > 59) return null;
  let t = Date.UTC(y, mo - 1, d, H, M, S) / 1000;
  if (zone === null) t -= utcOffset();
  else if (zone !== 'Z') {
    const zm = /^([+-])(\d\d):?(\d\d)$/.exec(zone);
    t -= (zm[1] === '-' ? -1 : 1) * (Number(zm[2]) * 3600 + Number(zm[3]) * 60);
  }
  return t;
}

/** The job's passphrase: control file passphrase_<NAME>, else the default (duplicati/standin-lib.sh job_passphrase). */
function jobPassphrase(name) {
  const first = readText(path.join(CTL, `passphrase_${name}`)).split('\n')[0];
  return first !== '' ? first : `standin-${name}-passphrase`;
}

/** The job's Settings as [name, value] (standin-lib.sh job_settings): the web UI's for an encrypted job, then job_settings_<NAME>. */
function jobSettings(job) {
  const settings = [
    ['encryption-module', 'aes'],
    ['compression-module', 'zip'],
    ['dblock-size', '50mb'],
    ['passphrase', jobPassphrase(job.name)],
  ];
  for (const line of readText(path.join(CTL, `job_settings_${job.name}`)).split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    const i = line.indexOf('=');
    settings.push(i < 0 ? [line.trim(), ''] : [line.slice(0, i).trim(), line.slice(i + 1)]);
  }
  return settings;
}

/** A job option (either "name" or "--name") as Utility.ParseBoolOption reads it: present = true unless it says false. */
function jobBool(job, name) {
  const found = jobSettings(job).filter(([n]) => n === name || n === `--${name}`).pop();
  if (!found) return false;
  return !['0', 'off', 'false', 'no'].includes(String(found[1]).trim().toLowerCase());
}

// Password settings (Connection.PasswordFieldNames: every option of type Password).
const PASSWORD_SETTINGS = new Set(['passphrase', '--passphrase']);

/** A restore's result file (restore.sh): KEY=VALUE, base64 log entries (M64/W64/E64) and broken files (B64). */
function readRestoreResult(relative) {
  const result = { M: [], W: [], E: [], B: [] };
  for (const line of readText(path.join(CTL, relative)).split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const key = line.slice(0, i);
    const value = line.slice(i + 1);
    if (/^[MWEB]64$/.test(key)) result[key[0]].push(Buffer.from(value, 'base64').toString('utf8'));
    else result[key] = value;
  }
  return result;
}

/**
 * The "Result" message of a restore (RestoreResults serialized by Newtonsoft, Library/Main/ResultClasses.cs and
 * Library/ResultSerialization/JsonFormatSerializer.cs): the restore's own members first, then BasicResults'. The
 * members differ by release: RestorePath from 2.3.0.0; SizeOfRestoredData, UnmodifiedFiles, SizeOfUnmodifiedFiles
 * and TotalVolumesAccessed (when above 0) from 2.3.0.2. RestoredSymlinks stays 0: the restore engine since 2.2
 * counts a symlink in RestoredFiles (FileProcessor.cs). A restore that threw is Fatal, with FailedOperation in Errors.
 */
function restoreMessage(run, result) {
  const num = (key) => Number(result[key] ?? 0);
  const begin = Number(result.BeginMs ?? run.start);
  const end = Number(result.EndMs ?? run.end);
  const message = {
    BrokenLocalFiles: result.B,
    BrokenRemoteFiles: [],
    RestoredFiles: num('RestoredFiles'),
    SizeOfRestoredFiles: num('SizeOfRestoredFiles'),
  };
  if (versionAtLeast('2.3.0.2')) message.SizeOfRestoredData = num('SizeOfRestoredData');
  Object.assign(message, {
    RestoredFolders: num('RestoredFolders'),
    RestoredSymlinks: 0,
    PatchedFiles: 0,
    DeletedFiles: 0,
    DeletedFolders: 0,
    DeletedSymlinks: 0,
  });
  if (versionAtLeast('2.3.0.2')) Object.assign(message, { UnmodifiedFiles: num('UnmodifiedFiles'), SizeOfUnmodifiedFiles: num('SizeOfUnmodifiedFiles') });
  if (versionAtLeast('2.3.0.0')) message.RestorePath = result.RestorePath ? result.RestorePath : null;
  if (versionAtLeast('2.3.0.2') && num('SizeOfRestoredData') > 0) message.TotalVolumesAccessed = Math.ceil(num('SizeOfRestoredData') / 52428800);
  Object.assign(message, {
    MainOperation: 'Restore',
    RecreateDatabaseResults: null,
    ParsedResult: run.outcome,
    Interrupted: false,
    Version: `${versionNumber()} (${versionName()})`,
    EndTime: isoDate(end),
    BeginTime: isoDate(begin),
    Duration: timeSpan(end - begin),
    MessagesActualLength: result.M.length,
    WarningsActualLength: result.W.length,
    ErrorsActualLength: result.E.length,
    Messages: result.M,
    Warnings: result.W,
    Errors: result.E,
    BackendStatistics: {
      RemoteCalls: 1 + Math.ceil(num('SizeOfRestoredData') / 52428800),
      BytesUploaded: 0,
      BytesDownloaded: num('SizeOfRestoredData'),
      FilesUploaded: 0,
      FilesDownloaded: Math.ceil(num('SizeOfRestoredData') / 52428800),
      FilesDeleted: 0,
      FoldersCreated: 0,
      RetryAttempts: 0,
      UnknownFileSize: 0,
      UnknownFileCount: 0,
      KnownFileCount: 0,
      KnownFileSize: 0,
      LastBackupDate: isoDate((filesetTimes(run.backup)[0] ?? 0) * 1000),
      BackupListCount: filesetTimes(run.backup).length,
      TotalQuotaSpace: 0,
      FreeQuotaSpace: 0,
      AssignedQuotaSpace: -1,
      ReportedQuotaError: false,
      ReportedQuotaWarning: false,
      MainOperation: 'Restore',
      ParsedResult: 'Success',
      Interrupted: false,
      Version: `${versionNumber()} (${versionName()})`,
      EndTime: '0001-01-01T00:00:00',
      BeginTime: isoDate(begin),
      Duration: '00:00:00',
      MessagesActualLength: 0,
      WarningsActualLength: 0,
      ErrorsActualLength: 0,
      Messages: null,
      Warnings: null,
      Errors: null,
    },
  });
  return JSON.stringify(message);
}

// ------------------------------------------------------------------ tokens

function ensureApiDir() {
  fs.mkdirSync(API_DIR, { recursive: true });
}

// Kept across restarts (as Duplicati keeps its JWTConfig in its database), so tokens
// survive a restart of the service.
let cachedKey = '';
function signingKey() {
  if (cachedKey) return cachedKey;
  const file = path.join(API_DIR, 'jwt-key');
  let key = readText(file).trim();
  if (!key) {
    ensureApiDir();
    key = crypto.randomBytes(32).toString('base64');
    writeAtomic(file, `${key}\n`);
  }
  cachedKey = key;
  return key;
}

const FAMILIES = path.join(API_DIR, 'families.json');
let families = {};
try {
  families = JSON.parse(readText(FAMILIES) || '{}');
} catch {
  families = {};
}
/** Token families (TokenFamilyStore), kept on disk; only the newest 500 are kept. */
function saveFamilies() {
  const newest = Object.entries(families).sort((a, b) => (b[1].updated ?? 0) - (a[1].updated ?? 0));
  families = Object.fromEntries(newest.slice(0, 500));
  ensureApiDir();
  writeAtomic(FAMILIES, JSON.stringify(families));
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function signJwt(claims, ttlSeconds) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ ...claims, nbf: now, exp: now + ttlSeconds, iss: ISSUER, aud: ISSUER }));
  const sig = crypto.createHmac('sha256', signingKey()).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/** -> { claims } or { error: 'invalid' | 'expired', expiredAt } (JWTTokenProvider, ClockSkew). */
function readJwt(token, type) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return { error: 'invalid' };
  const expected = crypto.createHmac('sha256', signingKey()).update(`${parts[0]}.${parts[1]}`).digest();
  let given;
  try {
    given = Buffer.from(parts[2], 'base64url');
  } catch {
    return { error: 'invalid' };
  }
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return { error: 'invalid', reason: 'The signature is invalid' };
  let claims;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return { error: 'invalid' };
  }
  if (claims.iss !== ISSUER || claims.aud !== ISSUER || claims.typ !== type) return { error: 'invalid' };
  const skew = numberSetting('token_clock_skew', 5);
  const now = Date.now() / 1000;
  if (typeof claims.exp !== 'number' || now > claims.exp + skew) return { error: 'expired', expiredAt: claims.exp };
  if (typeof claims.nbf === 'number' && now < claims.nbf - skew) return { error: 'invalid' };
  return { claims };
}

/** ASP.NET's invariant "MM/dd/yyyy HH:mm:ss" in the JwtBearer expired message. */
function invariantDate(seconds) {
  const d = new Date(seconds * 1000);
  return `${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

function issueTokens(family, shortLived) {
  const ttl = Math.max(1, numberSetting('token_ttl', 900));
  const nonce = crypto.randomBytes(16).toString('base64url');
  const fam = families[family];
  fam.nonce = crypto.createHash('sha256').update(nonce).digest('hex');
  fam.updated = Date.now();
  const refreshMinutes = shortLived ? 60 : 60 * 24 * 30;
  const refresh = signJwt({ typ: 'RefreshToken', sid: 'webserver', fam: family, cnt: String(fam.counter) }, refreshMinutes * 60);
  saveFamilies();
  return {
    access: signJwt({ typ: 'AccessToken', sid: 'webserver', fam: family }, ttl),
    refresh,
    refreshExpires: new Date(Date.now() + refreshMinutes * 60000),
    nonce,
  };
}

// ------------------------------------------------------------------ http helpers

function send(res, status, body, headers = {}) {
  if (res.writableEnded) return;
  if (body === undefined) {
    res.writeHead(status, { 'Content-Length': 0, ...headers });
    res.end();
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'text/plain' : 'application/json; charset=utf-8';
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** UserReportedHttpException through the exception handler: {Error, Code}. */
const fail = (res, status, message) => send(res, status, { Error: message, Code: status });

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 1 << 20) reject(new Error('body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** JSON body with case-insensitive property names (ASP.NET web defaults); null if not JSON. */
async function readJson(req) {
  const text = await readBody(req);
  if (text.trim() === '') return {};
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== 'object') return null;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), v]));
  } catch {
    return null;
  }
}

function cookies(req) {
  const out = {};
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

function hostPort(req) {
  const m = /:(\d+)$/.exec(String(req.headers.host ?? ''));
  return m ? m[1] : '0';
}

function refreshCookie(req, value, expires) {
  const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
  return `RefreshToken_${hostPort(req)}=${encodeURIComponent(value)}; expires=${expires.toUTCString()}; domain=${host}; path=/api/v1/auth/refresh; samesite=strict; httponly`;
}

/** JwtBearer: 401 with an empty body and a WWW-Authenticate challenge. */
function authorize(req, res) {
  const header = String(req.headers.authorization ?? '');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) {
    send(res, 401, undefined, { 'WWW-Authenticate': 'Bearer' });
    return false;
  }
  const read = readJwt(m[1], 'AccessToken');
  if (read.error === 'expired') {
    send(res, 401, undefined, {
      'WWW-Authenticate': `Bearer error="invalid_token", error_description="The token expired at '${invariantDate(read.expiredAt)}'"`,
    });
    return false;
  }
  if (read.error || !families[read.claims.fam]) {
    const reason = read.reason ? `, error_description="${read.reason}"` : '';
    send(res, 401, undefined, { 'WWW-Authenticate': `Bearer error="invalid_token"${reason}` });
    return false;
  }
  return true;
}

/** Query parameters, names lower-cased (ASP.NET binds them case-insensitively). */
function queryOf(url) {
  const q = {};
  for (const [k, v] of url.searchParams) q[k.toLowerCase()] = v;
  return q;
}

function parseBool(value) {
  if (value === undefined) return undefined;
  if (/^true$/i.test(value)) return true;
  if (/^false$/i.test(value)) return false;
  return null;
}

function parseLong(value) {
  if (value === undefined) return undefined;
  return /^-?\d+$/.test(value.trim()) ? Number(value) : null;
}

/** Library.Utility.Timeparser.ParseTimeSpan, the forms that matter: "30s", "1m30s", "2h", "90", "00:00:30". */
function parseTimeSpan(text) {
  const t = String(text).trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const hms = /^(\d+):(\d{1,2}):(\d{1,2})(\.\d+)?$/.exec(t);
  if (hms) return ((Number(hms[1]) * 60 + Number(hms[2])) * 60 + Number(hms[3]) + Number(hms[4] ?? 0)) * 1000;
  const units = { s: 1, m: 60, h: 3600, D: 86400, W: 604800, M: 2592000, Y: 31536000 };
  let total = 0;
  let rest = t;
  if (!rest) return null;
  while (rest) {
    const m = /^(\d+)([smhDWMY])/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total * 1000;
}

// ------------------------------------------------------------------ endpoints

async function login(req, res) {
  const body = await readJson(req);
  if (body === null) return send(res, 400);
  if (typeof body.password !== 'string' || body.password !== apiPassword()) return fail(res, 401, 'Failed to log in');
  const family = crypto.randomUUID();
  families[family] = { counter: 1, created: Date.now() };
  const tokens = issueTokens(family, !(body.rememberme === true));
  send(res, 200, { AccessToken: tokens.access, RefreshNonce: tokens.nonce }, { 'Set-Cookie': refreshCookie(req, tokens.refresh, tokens.refreshExpires) });
}

async function refresh(req, res) {
  const body = (await readJson(req)) ?? {};
  const cookie = cookies(req)[`RefreshToken_${hostPort(req)}`];
  if (!cookie) return fail(res, 401, 'Authorization failed due to missing cookie.');
  const read = readJwt(cookie, 'RefreshToken');
  const fam = read.claims ? families[read.claims.fam] : undefined;
  const nonce = typeof body.nonce === 'string' ? body.nonce : '';
  if (!fam || crypto.createHash('sha256').update(nonce).digest('hex') !== fam.nonce) return fail(res, 401, 'Failed to refresh token');
  const diff = fam.counter - Number(read.claims.cnt);
  if (diff < 0 || diff > (Date.now() - fam.updated > 30000 ? 0 : 1)) {
    delete families[read.claims.fam];
    saveFamilies();
    return fail(res, 401, 'Failed to refresh token');
  }
  fam.counter += 1;
  const shortLived = read.claims.exp - read.claims.nbf <= 61 * 60;
  const tokens = issueTokens(read.claims.fam, shortLived);
  send(res, 200, { AccessToken: tokens.access, RefreshNonce: tokens.nonce }, { 'Set-Cookie': refreshCookie(req, tokens.refresh, tokens.refreshExpires) });
}

async function logout(req, res) {
  await readBody(req);
  const cookie = cookies(req)[`RefreshToken_${hostPort(req)}`];
  const read = cookie ? readJwt(cookie, 'RefreshToken') : {};
  if (read.claims && families[read.claims.fam]) {
    delete families[read.claims.fam];
    saveFamilies();
  }
  send(res, 200, { success: true }, { 'Set-Cookie': `RefreshToken_${hostPort(req)}=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/` });
}

async function listBackups(req, res) {
  await snapshot();
  send(res, 200, readJobs().map((job) => ({ Backup: backupDto(job, { list: true }), Schedule: null })));
}

async function getBackup(req, res, id) {
  await snapshot();
  const job = jobById(id);
  if (!job) return fail(res, 404, 'Backup not found');
  send(res, 200, { Schedule: null, Backup: backupDto(job), DisplayNames: { [sourcePath(job)]: path.basename(job.source) || job.source } });
}

/** BackupPost.ExecuteRunBackup: the active or queued task of that backup, else a new one. */
async function runBackup(req, res, id, query) {
  await readBody(req);
  const skipQueue = parseBool(query.skipqueue);
  if (skipQueue === null) return send(res, 400);
  const job = jobById(id);
  if (!job) return fail(res, 404, 'Backup not found');
  const task = await withLock(() => {
    const state = readQueueState();
    const existing = state.active?.backup === job.id ? state.active.task : state.queue.find((q) => q.backup === job.id)?.task;
    if (existing !== undefined) {
      appendEvent(`DEDUP ${existing} ${job.id} ${job.name}`);
      return existing;
    }
    const counterFile = path.join(ST, 'counter');
    const next = (Number(readText(counterFile).trim()) || 10) + 1;
    writeAtomic(counterFile, `${next}\n`);
    const line = `${next} ${job.id} ${Date.now()}\n`;
    const queue = state.queue.map(queueLine).join('');
    writeAtomic(path.join(ST, 'queue'), skipQueue ? line + queue : queue + line);
    appendEvent(`ENQUEUE ${next} ${job.id} ${job.name}`);
    return next;
  });
  await snapshot();
  send(res, 200, { Status: 'OK', ID: task });
}

async function backupLog(req, res, id, query) {
  const offset = parseLong(query.offset);
  const pagesize = parseLong(query.pagesize);
  if (offset === null || pagesize === null) return send(res, 400);
  const state = await snapshot();
  if (!jobById(id)) return fail(res, 404, 'Backup not found');
  // BackupGet.cs ExecuteGetLog: the backup's database lock or DatabaseLockedException, a
  // UserInformationException that the exception handler answers 400 with its HelpId.
  // Held while a task of that backup runs, and (log_locked) for a while after it ended.
  const lastEnd = Math.max(0, ...(results.byBackup.get(id) ?? []).map((run) => run.end));
  if (state.active?.backup === id || Date.now() - lastEnd < numberSetting('log_locked', 0) * 1000) {
    appendEvent(`LOG_LOCKED ${id}`);
    return send(res, 400, {
      Error: 'The backup database is currently in use by another operation and cannot be accessed concurrently. Please wait for the running operation to finish and try again.',
      Code: 400,
      HelpId: 'DatabaseLocked',
    });
  }
  // LogData.DumpTable: WHERE ID < offset ORDER BY ID DESC LIMIT clamp(pagesize, 10, 500)
  const limit = Math.max(10, Math.min(500, pagesize ?? 100));
  const rows = backupHistory(id)
    .rows.filter((row) => offset === undefined || row.ID < offset)
    .reverse()
    .slice(0, limit);
  send(res, 200, rows);
}

/** DatabaseLockedException through the exception handler (a UserInformationException: 400 with its HelpId). */
function databaseLocked(res, id) {
  appendEvent(`LOG_LOCKED ${id}`);
  return send(res, 400, {
    Error: 'The backup database is currently in use by another operation and cannot be accessed concurrently. Please wait for the running operation to finish and try again.',
    Code: 400,
    HelpId: 'DatabaseLocked',
  });
}

/**
 * BackupGet.ExecuteGetFilesetsAsync: a List operation with list-sets-only, run at once (RunImmediatelyAsync), not
 * queued. LocalListDatabase QuickSets gives FileCount and FileSizes -1 and IsFullBackup as a number;
 * include-metadata=true (list-sets-only false: Sets) counts the files (entries with data: no folders, no symlinks)
 * and their sizes. Time is the fileset's time in local time (FilesetTimes: ToLocalTime), written with its offset.
 * While a task of that backup runs it answers DatabaseLocked (RunImmediatelyAsync takes the database lock:
 * 2.3.0.107 canary and 2.3.1.0 beta; earlier releases run the listing beside the task).
 */
async function listFilesets(req, res, id, query) {
  const includeMetadata = parseBool(query['include-metadata']);
  const fromRemoteOnly = parseBool(query['from-remote-only']);
  if (includeMetadata === null || fromRemoteOnly === null) return send(res, 400);
  const state = await snapshot();
  const job = jobById(id);
  if (!job) return fail(res, 404, 'Backup not found');
  if (state.active?.backup === id) return databaseLocked(res, id);
  const times = filesetTimes(id);
  if (times.length === 0 && fromRemoteOnly) return fail(res, 500, 'folder-missing');
  send(res, 200, times.map((time, version) => {
    let count = -1;
    let sizes = -1;
    if (includeMetadata && !fromRemoteOnly) {
      const files = readManifest(id, time).filter((entry) => entry.type === 'f');
      count = files.length;
      sizes = files.reduce((sum, entry) => sum + entry.size, 0);
    }
    return { Version: version, IsFullBackup: 1, Time: localDateTime(time), FileCount: count, FileSizes: sizes };
  }));
}

/** FilterExpression (Library/Utility/FilterExpression.cs): [regex] whole path, @literal, * and ? wildcards, else equal. */
function filterMatcher(filters) {
  const tests = filters
    .filter((f) => f !== '')
    .map((f) => {
      if (/^\[.*\]$/.test(f)) {
        const inner = f.slice(1, -1);
        const rx = new RegExp(inner.startsWith('^') && inner.endsWith('$') ? inner : `^(?:${inner})$`);
        return (p) => rx.test(p);
      }
      if (f.startsWith('@')) return (p) => p === f.slice(1);
      if (/[*?]/.test(f)) {
        const rx = new RegExp(`^${f.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
        return (p) => rx.test(p);
      }
      return (p) => p === f;
    });
  return (p) => tests.length === 0 || tests.some((test) => test(p));
}

/**
 * BackupGet.ExecuteGetFilesAsync (GET backup/{id}/files?filter=&time=&all-versions=&prefix-only=&folder-contents=):
 * time is required unless all-versions ("Invalid or missing time", 400); a List operation run at once. The
 * versions at or before the time (no fallback to the newest here; LocalListDatabase.SelectFileSets); a filter that
 * is not a list of exact paths looks at the newest of them only (ListFilesHandler: TakeFirst). Files: Path and a
 * size per version (-1: absent, a folder or a symlink), folders first, then by path. folder-contents lists the
 * direct children of the filter's folder; prefix-only the longest common folder of the matches.
 */
async function listFiles(req, res, id, query) {
  const allVersions = parseBool(query['all-versions']);
  const prefixOnly = parseBool(query['prefix-only']);
  const folderContents = parseBool(query['folder-contents']);
  if (allVersions === null || prefixOnly === null || folderContents === null) return send(res, 400);
  const state = await snapshot();
  const job = jobById(id);
  if (!job) return fail(res, 404, 'Backup not found');
  if ((query.time === undefined || query.time.trim() === '') && !allVersions) return fail(res, 400, 'Invalid or missing time');
  if (state.active?.backup === id) return databaseLocked(res, id);
  let time = null;
  if (!allVersions) {
    time = parseTime(query.time);
    if (time === null) return send(res, 500, { Error: 'An error occurred', Code: 500 });
  }
  const all = filesetTimes(id).map((t, version) => ({ version, time: t }));
  let sets = time === null ? all : all.filter((set) => set.time <= time);
  const filter = query.filter ?? '';
  const exact = filter !== '' && !/[*?]/.test(filter) && !/^\[.*\]$/.test(filter);
  if (filter !== '' && (!exact || folderContents) && !allVersions) sets = sets.slice(0, 1);
  const matches = filterMatcher(filter === '' ? [] : [filter]);
  const found = new Map();
  sets.forEach((set, index) => {
    for (const entry of readManifest(id, set.time)) {
      let hit;
      if (folderContents) {
        const folder = filter.replace(/^@/, '');
        const rest = entry.path.startsWith(folder) ? entry.path.slice(folder.length) : null;
        hit = rest !== null && rest !== '' && /^[^/]+\/?$/.test(rest);
      } else hit = matches(entry.path);
      if (!hit) continue;
      if (!found.has(entry.path)) found.set(entry.path, sets.map(() => -1));
      if (entry.type === 'f') found.get(entry.path)[index] = entry.size;
    }
  });
  let files = [...found.entries()].map(([p, sizes]) => ({ Path: p, Sizes: sizes }));
  if (prefixOnly && files.length > 0) {
    let prefix = files.reduce((a, f) => {
      let i = 0;
      while (i < a.length && i < f.Path.length && a[i] === f.Path[i]) i += 1;
      return a.slice(0, i);
    }, files[0].Path);
    prefix = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    files = [{ Path: prefix, Sizes: sets.map(() => -1) }];
  }
  files.sort((a, b) => Number(b.Path.endsWith('/')) - Number(a.Path.endsWith('/')) || (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
  send(res, 200, {
    Filesets: sets.map((set) => {
      const entries = readManifest(id, set.time).filter((entry) => entry.type === 'f');
      return { Version: set.version, IsFullBackup: 1, Time: localDateTime(set.time), FileCount: entries.length, FileSizes: entries.reduce((sum, e) => sum + e.size, 0) };
    }),
    Files: files,
  });
}

/**
 * BackupPost.ExecuteRestore (Dto/RestoreInputDto.cs): {paths, passphrase, time, restore_path, overwrite,
 * permissions, skip_metadata}. Runner.CreateRestoreTask: time through Timeparser.ParseTimeInterval (a string that
 * does not parse throws: 500); overwrite, restore-permissions and skip-metadata always set, an omitted one as
 * false, which overrides the job's own setting (ExtraOptions win over ApplyOptions); the passphrase only when
 * given, else the job's. The paths are filters as they are (no folder "/*" added, unlike duplicati-cli). The task is
 * queued at the end of the one-worker queue (AddTask; never de-duplicated) and runs restore.sh in the container
 * (worker.sh run_restore). Answer {Status: "OK", ID: task}.
 */
async function restoreBackup(req, res, id) {
  const body = await readJson(req);
  if (body === null) return send(res, 400);
  const job = jobById(id);
  if (!job) return fail(res, 404, 'Backup not found');
  const paths = body.paths ?? [];
  if (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string')) return send(res, 400);
  for (const key of ['overwrite', 'permissions', 'skip_metadata']) {
    if (body[key] !== undefined && body[key] !== null && typeof body[key] !== 'boolean') return send(res, 400);
  }
  if (body.time !== undefined && body.time !== null && typeof body.time !== 'string') return send(res, 400);
  const time = parseTime(body.time ?? '');
  if (time === null) {
    log('restore: time does not parse:', body.time);
    return send(res, 500, { Error: 'An error occurred', Code: 500 });
  }
  const given = typeof body.passphrase === 'string' && body.passphrase.trim() !== '' ? body.passphrase : null;
  const hasDatabase = fs.existsSync(path.join(CTL, 'db', `${dbName(job.name)}.sqlite`));
  const request = [
    `backup=${job.id}`,
    // the job's database exists once it has run; before that a restore rebuilds one from the remote files
    `db=${hasDatabase ? 'local' : 'recreate'}`,
    `time=${time}`,
    'versions=',
    `restore_path=${typeof body.restore_path === 'string' ? body.restore_path : ''}`,
    `overwrite=${body.overwrite === true}`,
    `permissions=${body.permissions === true}`,
    `skip_metadata=${body.skip_metadata === true}`,
    `dont_compress=${jobBool(job, 'dont-compress-restore-paths')}`,
    `allow_outside=${jobBool(job, 'allow-restore-outside-target-directory')}`,
    `no_backend_verification=${jobBool(job, 'no-backend-verification')}`,
    `passphrase=${given === null || given === jobPassphrase(job.name) ? 'ok' : 'wrong'}`,
    ...paths.map((p) => `filter=+${p}`),
  ];
  const task = await withLock(() => {
    const state = readQueueState();
    const counterFile = path.join(ST, 'counter');
    const next = (Number(readText(counterFile).trim()) || 10) + 1;
    writeAtomic(counterFile, `${next}\n`);
    writeAtomic(path.join(ST, `restore.${next}`), `${request.join('\n')}\ntask=${next}\n`);
    const queue = state.queue.map(queueLine).join('');
    writeAtomic(path.join(ST, 'queue'), `${queue}${queueLine({ task: next, backup: job.id, enqueuedAt: Date.now(), kind: 'restore' })}`);
    appendEvent(`RESTORE_ENQUEUE ${next} ${job.id} ${job.name}`);
    return next;
  });
  await snapshot();
  send(res, 200, { Status: 'OK', ID: task });
}

/**
 * BackupGet.ExecuteGetExportArgsOnly (GET backup/{id}/export-argsonly?export-passwords=true): the job as
 * duplicati-cli arguments (Runner.GetCommandLineParts): {Backend: the storage URL, Arguments: the sources, Options:
 * "--backup-name=", "--dbpath=", "--backup-id=DB-<id>", the job's settings, "--disable-module=console-password-input"}.
 * Without export-passwords the passphrase setting is left out (Backup.RemoveSensitiveInformation).
 */
async function exportArgsOnly(req, res, id, query) {
  const exportPasswords = parseBool(query['export-passwords']);
  if (exportPasswords === null) return send(res, 400);
  const job = jobById(id);
  if (!job) return fail(res, 404, 'Backup not found');
  const settings = jobSettings(job).filter(([name]) => exportPasswords || !PASSWORD_SETTINGS.has(name));
  const options = new Map([
    ['backup-name', job.name],
    ['dbpath', `/data/Duplicati/${dbName(job.name)}.sqlite`],
    ['backup-id', `DB-${job.id}`],
  ]);
  for (const [name, value] of settings.filter(([n]) => !n.startsWith('--'))) options.set(name, value);
  for (const [name, value] of settings.filter(([n]) => n.startsWith('--'))) options.set(name.slice(2), value);
  options.set('disable-module', 'console-password-input');
  send(res, 200, { Backend: `file:///backups/${job.name}`, Arguments: [sourcePath(job)], Options: [...options].map(([k, v]) => `--${k}=${v}`) });
}

function serverStatus(state) {
  const active = state.active;
  let icon;
  if (!active) icon = state.paused ? 'Paused' : results.hasError ? 'ReadyError' : results.hasWarning ? 'ReadyWarning' : 'Ready';
  else icon = state.paused ? 'ActivePaused' : 'Active';
  return {
    ActiveTask: active ? { Item1: active.task, Item2: active.backup } : null,
    ProgramState: state.paused ? 'Paused' : 'Running',
    SchedulerQueueIds: state.queue.map((q) => ({ Item1: q.task, Item2: q.backup })),
    ProposedSchedule: [],
    HasWarning: results.hasWarning,
    HasError: results.hasError,
    SuggestedStatusIcon: icon,
    EstimatedPauseEnd: '0001-01-01T00:00:00',
    LastEventID: eventId,
    LastDataUpdateID: dataUpdateId,
    LastNotificationUpdateID: notificationUpdateId,
    UpdatedVersion: null,
    UpdaterState: 'Waiting',
    UpdateDownloadLink: null,
    UpdateDownloadProgress: 0,
  };
}

/** ServerState.Execute: optional long poll on the event id (EventPollNotify.Wait). */
async function serverState(req, res, query) {
  const longpoll = parseBool(query.longpoll);
  const lastEventId = parseLong(query.lasteventid);
  if (longpoll === null || lastEventId === null) return send(res, 400);
  let state = await snapshot();
  if (longpoll) {
    if (lastEventId === undefined) return fail(res, 400, 'When activating long poll, the request must include the last event id');
    if (query.duration === undefined) return fail(res, 400, 'When activating long poll, the request must include the duration');
    const ms = parseTimeSpan(query.duration);
    if (ms === null) return fail(res, 400, 'When activating long poll, the request must include the duration and it must be a valid time span');
    if (ms < 10000 || ms > 3600000) return fail(res, 400, 'The duration must be between 10 seconds and 1 hour');
    if (lastEventId === eventId) {
      await waitForEvent(ms, (wake) => res.on('close', wake));
      if (res.destroyed) return;
      state = await snapshot();
    }
  }
  send(res, 200, serverStatus(state));
}

async function pauseResume(req, res, pause) {
  await readBody(req);
  await withLock(() => {
    if (pause) {
      writeAtomic(path.join(CTL, 'paused'), 'on\n');
      appendEvent('PAUSE');
    } else {
      fs.rmSync(path.join(CTL, 'paused'), { force: true });
      appendEvent('RESUME');
    }
  });
  await snapshot();
  send(res, 200);
}

/** TaskQueueService.GetTaskInfo. */
async function taskInfo(req, res, idText) {
  const id = parseLong(idText);
  if (id === null || id === undefined) return send(res, 400);
  const state = await snapshot();
  const base = { Status: '', ID: id, TaskStarted: null, TaskFinished: null, ErrorMessage: null, Exception: null };
  if (state.active?.task === id) return send(res, 200, { ...base, Status: 'Running', TaskStarted: isoDate(state.active.startedAt) });
  if (state.queue.some((q) => q.task === id)) return send(res, 200, { ...base, Status: 'Waiting' });
  const done = results.byTask.get(id);
  if (!done) return fail(res, 404, 'No such task found');
  // Runner.cs RunInternalAsync rethrows after UpdateMetadataError, so a task that threw
  // (the stand-in's Fatal) is "Failed" with the exception's message; the rest "Completed".
  if (done.restore && done.outcome === 'Fatal') {
    const result = readRestoreResult(done.resultFile);
    const type = result.ExceptionType || 'System.Exception';
    const message = result.ExceptionMessage || 'The restore failed';
    return send(res, 200, { ...base, Status: 'Failed', TaskStarted: isoDate(done.start), TaskFinished: isoDate(done.end), ErrorMessage: message, Exception: `${type}: ${message}` });
  }
  if (done.outcome === 'Fatal') {
    const message = fatalMessage(done);
    return send(res, 200, { ...base, Status: 'Failed', TaskStarted: isoDate(done.start), TaskFinished: isoDate(done.end), ErrorMessage: message, Exception: `Duplicati.Library.Interface.UserInformationException: ${message}` });
  }
  send(res, 200, { ...base, Status: 'Completed', TaskStarted: isoDate(done.start), TaskFinished: isoDate(done.end) });
}

/**
 * Tasks.cs / TaskQueueService.StopOrAbortTaskAsync: the active or a queued task, else 404
 * "No such task found". The active one is told through state/stop (worker.sh ends it
 * Interrupted: stop after the current file, abort at once); a queued one never starts.
 */
async function stopTask(req, res, idText, mode) {
  await readBody(req);
  const id = parseLong(idText);
  if (id === null || id === undefined) return send(res, 400);
  const found = await withLock(() => {
    const state = readQueueState();
    if (state.active?.task === id) {
      writeAtomic(path.join(ST, 'stop'), `${id} ${mode}\n`);
      appendEvent(`STOP_ASKED ${id} ${state.active.backup} ${mode}`);
      return true;
    }
    const queued = state.queue.find((q) => q.task === id);
    if (!queued) return false;
    if (queued.kind === 'restore') {
      // A task not started yet has no controller: RunnerData.Stop/Abort do nothing (Controller?.Stop()),
      // so a queued restore stays queued and runs later
      appendEvent(`STOP_ASKED ${id} ${queued.backup} ${mode} QUEUED_RESTORE_IGNORED`);
      return true;
    }
    const rest = state.queue.filter((q) => q.task !== id).map(queueLine).join('');
    writeAtomic(path.join(ST, 'queue'), rest);
    const now = Date.now();
    const name = jobById(queued.backup)?.name ?? '?';
    fs.appendFileSync(path.join(CTL, 'results.log'), `${id} ${queued.backup} ${name} ${now} ${now} Interrupted\n`);
    appendEvent(`STOPPED ${id} ${queued.backup} ${name} QUEUED`);
    return true;
  });
  if (!found) return fail(res, 404, 'No such task found');
  await snapshot();
  send(res, 200);
}

/** SystemInfo.cs (Dto.SystemInfoDto), the members that matter. */
async function systemInfo(req, res) {
  send(res, 200, {
    APIVersion: 1,
    PasswordPlaceholder: '**********',
    ServerVersion: versionNumber(),
    ServerVersionName: versionName(),
    ServerVersionType: versionName().split('_')[1] ?? 'Stable',
    StartedBy: 'Server',
    DefaultUpdateChannel: 'Stable',
    DefaultUsageReportLevel: 'Information',
    ServerTime: new Date().toISOString(),
    OSType: 'Linux',
    MachineName: 'duplicati',
    UserName: 'root',
  });
}

/**
 * ProgressState.cs: the running backup's progress (IProgressEventData), 404 "No active
 * backup" otherwise. Progress comes from the worker (state/progress: TASK DONE_MS TOTAL_MS).
 */
async function progressState(req, res) {
  const state = await snapshot();
  if (!state.active) return fail(res, 404, 'No active backup');
  const [task, done, total] = readText(path.join(ST, 'progress')).trim().split(/\s+/).map(Number);
  const fraction = task === state.active.task && total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const files = 1000;
  const bytes = 50 * 1024 * 1024;
  const job = jobById(state.active.backup);
  if (state.active.kind === 'restore') {
    // a restore's progress (IProgressEventData): the stand-in reports its phase only
    return send(res, 200, {
      BackupID: state.active.backup, TaskID: state.active.task, BackendAction: 'Get', BackendPath: null, BackendFileSize: 0, BackendFileProgress: 0,
      BackendSpeed: 0, BackendIsBlocking: false, CurrentFilename: null, CurrentFilesize: 0, CurrentFileoffset: 0, CurrentFilecomplete: false,
      Phase: 'Restore_DownloadingRemoteFiles', OverallProgress: 0, ProcessedFileCount: 0, ProcessedFileSize: 0, TotalFileCount: 0, TotalFileSize: 0,
      StillCounting: false, ActiveTransfers: [],
    });
  }
  send(res, 200, {
    BackupID: state.active.backup,
    TaskID: state.active.task,
    BackendAction: 'Put',
    BackendPath: null,
    BackendFileSize: 0,
    BackendFileProgress: 0,
    BackendSpeed: 0,
    BackendIsBlocking: false,
    CurrentFilename: job ? `${sourcePath(job)}heartbeat` : null,
    CurrentFilesize: 0,
    CurrentFileoffset: 0,
    CurrentFilecomplete: false,
    Phase: fraction === 0 ? 'Backup_Begin' : 'Backup_ProcessingFiles',
    OverallProgress: fraction,
    ProcessedFileCount: Math.round(files * fraction),
    ProcessedFileSize: Math.round(bytes * fraction),
    TotalFileCount: files,
    TotalFileSize: bytes,
    StillCounting: false,
    ActiveTransfers: [],
  });
}

// ------------------------------------------------------------------ routing

async function handle(req, res) {
  const started = Date.now();
  const url = new URL(req.url ?? '/', 'http://localhost');
  const route = url.pathname.replace(/\/+$/, '').toLowerCase() || '/';
  const query = queryOf(url);
  const method = req.method ?? 'GET';
  const parts = route.split('/').filter(Boolean);
  const rawParts = url.pathname.split('/').filter(Boolean);

  const table = [];
  const on = (m, test, fn, auth = true) => table.push({ m, test, fn, auth });
  on('GET', () => route === '/health', () => send(res, 200, 'Healthy'), false);
  on('POST', () => route === '/api/v1/auth/login', () => login(req, res), false);
  on('POST', () => route === '/api/v1/auth/refresh', () => refresh(req, res), false);
  on('POST', () => route === '/api/v1/auth/refresh/logout', () => logout(req, res), false);
  on('GET', () => route === '/api/v1/backups', () => listBackups(req, res));
  on('GET', () => parts.length === 4 && route.startsWith('/api/v1/backup/'), () => getBackup(req, res, rawParts[3]));
  on('POST', () => parts.length === 5 && route.startsWith('/api/v1/backup/') && (parts[4] === 'run' || parts[4] === 'start'), () => runBackup(req, res, rawParts[3], query));
  on('GET', () => parts.length === 5 && route.startsWith('/api/v1/backup/') && parts[4] === 'log', () => backupLog(req, res, rawParts[3], query));
  on('GET', () => parts.length === 5 && route.startsWith('/api/v1/backup/') && parts[4] === 'filesets', () => listFilesets(req, res, rawParts[3], query));
  on('GET', () => parts.length === 5 && route.startsWith('/api/v1/backup/') && parts[4] === 'files', () => listFiles(req, res, rawParts[3], query));
  on('POST', () => parts.length === 5 && route.startsWith('/api/v1/backup/') && parts[4] === 'restore', () => restoreBackup(req, res, rawParts[3]));
  on('GET', () => parts.length === 5 && route.startsWith('/api/v1/backup/') && parts[4] === 'export-argsonly', () => exportArgsOnly(req, res, rawParts[3], query));
  on('GET', () => route === '/api/v1/serverstate', () => serverState(req, res, query));
  on('POST', () => route === '/api/v1/serverstate/pause', () => pauseResume(req, res, true));
  on('POST', () => route === '/api/v1/serverstate/resume', () => pauseResume(req, res, false));
  on('GET', () => parts.length === 4 && route.startsWith('/api/v1/task/'), () => taskInfo(req, res, rawParts[3]));
  on('POST', () => parts.length === 5 && route.startsWith('/api/v1/task/') && (parts[4] === 'stop' || parts[4] === 'abort'), () => stopTask(req, res, rawParts[3], parts[4]));
  on('GET', () => route === '/api/v1/systeminfo', () => systemInfo(req, res));
  on('GET', () => route === '/api/v1/progressstate', () => progressState(req, res));

  const matching = table.filter((entry) => entry.test());
  const entry = matching.find((e) => e.m === method || (method === 'HEAD' && e.m === 'GET'));
  try {
    if (matching.length === 0) send(res, 404);
    else if (!entry) send(res, 405, undefined, { Allow: [...new Set(matching.map((e) => e.m))].join(', ') });
    else if (!entry.auth || authorize(req, res)) await entry.fn();
  } catch (error) {
    log('error:', method, url.pathname, error.stack ?? error.message);
    if (!res.headersSent) send(res, 500, { Error: 'An error occurred', Code: 500 });
  } finally {
    if (method !== 'GET' || res.statusCode >= 300) log(method, url.pathname + url.search, res.statusCode, `${Date.now() - started}ms`);
  }
}

// ------------------------------------------------------------------ main

ensureApiDir();
eventId = Number(readText(EVENT_FILE).trim()) || 0;
signingKey();
fs.mkdirSync(ST, { recursive: true });
loadResults();
signature = stateSignature(await withLock(readQueueState), flagOn('paused'));

const [host, port] = LISTEN.includes(':') ? [LISTEN.slice(0, LISTEN.lastIndexOf(':')), Number(LISTEN.slice(LISTEN.lastIndexOf(':') + 1))] : ['127.0.0.1', Number(LISTEN)];
const server = http.createServer((req, res) => {
  handle(req, res);
});
server.requestTimeout = 0; // long polls last up to an hour
server.headersTimeout = 60000;
server.keepAliveTimeout = 5000;
server.on('error', (error) => {
  log('listen failed:', error.message);
  process.exit(1);
});
server.listen(port, host, () => log(`Duplicati REST API stand-in on http://${host}:${port}/ (control ${CTL}, event id ${eventId})`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    log(`${signal}, exiting`);
    server.close();
    process.exit(0);
  });
}
poll();
