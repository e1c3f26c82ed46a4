const byteUnits = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * A size as every report prints it, in one unit system (binary, as Duplicati reports sizes:
 * `Utility.FormatSizeString`) and three figures at most: `102 B`, `1.5 KiB`, `12.3 MiB`, `840 GiB`.
 */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < byteUnits.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  // 1023.96 KiB would print as "1024 KiB": the next unit reads better.
  if (value >= 999.5 && unit < byteUnits.length - 1) return `${(value / 1024).toFixed(2)} ${byteUnits[unit + 1]}`;
  return `${value < 100 ? value.toFixed(1) : Math.round(value)} ${byteUnits[unit]}`;
}

/** How long something took, as people read it: `1.2 s`, `42 s`, `3m05s`, `2h10m`; `-` when unknown. */
export function formatSeconds(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  const minutes = Math.floor(seconds / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

