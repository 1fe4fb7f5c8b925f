/** Pure formatting helpers. */

const UNITS = ['KB', 'MB', 'GB', 'TB'] as const;

/**
 * Human-readable size with 1024-based units: `0 B`, `999 B`, `1.5 KB`, `12 MB`.
 * One decimal below 10 units, none above. Invalid input gives `unknown size`.
 */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return 'unknown size';
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < UNITS.length - 1);
  // 1023.96 KB would round to "1024 KB": promote to the next unit instead.
  if (unit < UNITS.length - 1 && Math.round(value) >= 1024) {
    value /= 1024;
    unit += 1;
  }
  const text = value < 10 ? (Math.round(value * 10) / 10).toFixed(1) : String(Math.round(value));
  // 9.96 rounds to "10.0": drop the decimal like every other value >= 10.
  return `${text === '10.0' ? '10' : text} ${UNITS[unit]}`;
}

/** A timestamp for display; falls back to the raw string when it does not parse. */
export function formatTimestamp(iso: string, locale?: string): string {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(time);
}
