import { describe, expect, it } from 'vitest';
import { formatSize, formatTimestamp } from './format';

describe('formatSize', () => {
  it.each([
    [0, '0 B'],
    [1, '1 B'],
    [1023, '1023 B'],
    [1024, '1.0 KB'],
    [1536, '1.5 KB'],
    [10 * 1024, '10 KB'],
    [10188, '9.9 KB'],
    [10200, '10 KB'], // 9.96 KB rounds up to 10, shown without a decimal
    [1024 * 1024 - 1, '1.0 MB'], // 1023.999 KB must not read "1024 KB"
    [5 * 1024 * 1024, '5.0 MB'],
    [123 * 1024 * 1024, '123 MB'],
    [3 * 1024 ** 3, '3.0 GB'],
    [2 * 1024 ** 4, '2.0 TB'],
    [5000 * 1024 ** 4, '5000 TB'],
  ])('%d bytes -> %s', (bytes, expected) => {
    expect(formatSize(bytes)).toBe(expected);
  });

  it('rejects nonsense', () => {
    expect(formatSize(-1)).toBe('unknown size');
    expect(formatSize(Number.NaN)).toBe('unknown size');
    expect(formatSize(Number.POSITIVE_INFINITY)).toBe('unknown size');
  });
});

describe('formatTimestamp', () => {
  it('formats a valid ISO timestamp', () => {
    const text = formatTimestamp('2024-03-05T10:20:00Z', 'en-US');
    expect(text).toMatch(/Mar 5, 2024/);
  });

  it('returns unparsable input unchanged', () => {
    expect(formatTimestamp('yesterday')).toBe('yesterday');
  });
});
