import type { Note } from './types';

/** A note for tests; `n` sets the id and orders created_at (higher = newer). */
export function note(n: number, overrides: Partial<Note> = {}): Note {
  const ts = new Date(Date.UTC(2024, 0, 1, 0, 0, n)).toISOString();
  return {
    id: n,
    title: `Note ${n}`,
    body: `Body ${n}`,
    created_at: ts,
    updated_at: ts,
    attachments: [],
    ...overrides,
  };
}

export function later(iso: string, seconds: number): string {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}
