import { describe, expect, it } from 'vitest';
import { compareTimestamps, initialState, isNote, parseEvent, reduce, sortNotes, type NotesState } from './notes';
import { later, note } from './testdata';

const ids = (state: NotesState) => state.notes.map((n) => n.id);

function loaded(...notes: ReturnType<typeof note>[]): NotesState {
  return reduce(initialState, { type: 'snapshot', notes });
}

describe('sortNotes', () => {
  it('puts the newest first', () => {
    expect(sortNotes([note(1), note(3), note(2)]).map((n) => n.id)).toEqual([3, 2, 1]);
  });

  it('breaks created_at ties by id, numerically', () => {
    const ts = '2024-01-01T00:00:00Z';
    const notes = [note(9, { created_at: ts }), note(10, { created_at: ts }), note(2, { created_at: ts })];
    expect(sortNotes(notes).map((n) => n.id)).toEqual([10, 9, 2]);
  });

  it('orders by time, not by string, across timezone offsets', () => {
    const a = note(1, { created_at: '2024-01-01T10:00:00+02:00' }); // 08:00Z
    const b = note(2, { created_at: '2024-01-01T09:00:00Z' });
    expect(sortNotes([a, b]).map((n) => n.id)).toEqual([2, 1]);
  });

  it('does not mutate its input', () => {
    const input = [note(1), note(2)];
    sortNotes(input);
    expect(input.map((n) => n.id)).toEqual([1, 2]);
  });
});

describe('compareTimestamps', () => {
  it('uses microseconds that Date.parse drops', () => {
    expect(compareTimestamps('2024-01-01T00:00:00.123456', '2024-01-01T00:00:00.123999')).toBe(-1);
  });
  it('is 0 for equal strings', () => {
    expect(compareTimestamps('2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')).toBe(0);
  });
});

describe('reduce', () => {
  it('starts unloaded and becomes loaded with a snapshot, sorted', () => {
    expect(initialState.loaded).toBe(false);
    const state = loaded(note(1), note(2));
    expect(state.loaded).toBe(true);
    expect(ids(state)).toEqual([2, 1]);
  });

  it('dedupes a snapshot, keeping the newest version', () => {
    const old = note(1);
    const fresh = note(1, { title: 'fresh', updated_at: later(old.updated_at, 5) });
    const state = reduce(initialState, { type: 'snapshot', notes: [fresh, old] });
    expect(state.notes).toEqual([fresh]);
  });

  it('adds a created note at the top', () => {
    const state = reduce(loaded(note(1), note(2)), { type: 'note.created', note: note(3) });
    expect(ids(state)).toEqual([3, 2, 1]);
  });

  it('does not duplicate a note created here and echoed by the socket', () => {
    const created = note(3);
    let state = reduce(loaded(note(1)), { type: 'upsert', note: created });
    state = reduce(state, { type: 'note.created', note: { ...created } });
    expect(ids(state)).toEqual([3, 1]);
  });

  it('matches ids across number and string forms', () => {
    const state = reduce(loaded(note(1)), { type: 'note.deleted', id: '1' });
    expect(state.notes).toEqual([]);
  });

  it('replaces a note with a newer version in place', () => {
    const n2 = note(2);
    const edited = { ...n2, title: 'edited', updated_at: later(n2.updated_at, 60) };
    const state = reduce(loaded(note(1), n2, note(3)), { type: 'note.updated', note: edited });
    expect(ids(state)).toEqual([3, 2, 1]);
    expect(state.notes[1]!.title).toBe('edited');
  });

  it('ignores an update older than what it has', () => {
    const n1 = note(1);
    const v2 = { ...n1, title: 'v2', updated_at: later(n1.updated_at, 10) };
    const v1 = { ...n1, title: 'v1', updated_at: later(n1.updated_at, 5) };
    let state = reduce(loaded(n1), { type: 'upsert', note: v2 });
    state = reduce(state, { type: 'note.updated', note: v1 });
    expect(state.notes[0]!.title).toBe('v2');
  });

  it('accepts an update with the same updated_at (idempotent echo)', () => {
    const n1 = note(1);
    const same = { ...n1, title: 'same time' };
    expect(reduce(loaded(n1), { type: 'note.updated', note: same }).notes[0]!.title).toBe('same time');
  });

  it('deletes, and a late create or update does not bring the note back', () => {
    let state = reduce(loaded(note(1), note(2)), { type: 'note.deleted', id: 2 });
    expect(ids(state)).toEqual([1]);
    state = reduce(state, { type: 'note.updated', note: note(2, { updated_at: '2030-01-01T00:00:00Z' }) });
    state = reduce(state, { type: 'note.created', note: note(2) });
    expect(ids(state)).toEqual([1]);
  });

  it('lets a snapshot bring back a note it lists, forgetting tombstones', () => {
    let state = reduce(loaded(note(1), note(2)), { type: 'remove', id: 2 });
    state = reduce(state, { type: 'snapshot', notes: [note(1), note(2)] });
    expect(ids(state)).toEqual([2, 1]);
    expect(state.deleted.size).toBe(0);
  });

  it('deleting an unknown note is harmless', () => {
    const state = reduce(loaded(note(1)), { type: 'note.deleted', id: 99 });
    expect(ids(state)).toEqual([1]);
  });

  it('adds an uploaded attachment once', () => {
    const attachment = { id: 7, filename: 'a.txt', size: 3, content_type: 'text/plain' };
    let state = reduce(loaded(note(1)), { type: 'attachment.added', noteId: 1, attachment });
    state = reduce(state, { type: 'attachment.added', noteId: 1, attachment });
    expect(state.notes[0]!.attachments).toEqual([attachment]);
    // for a note that is gone: no change
    expect(reduce(state, { type: 'attachment.added', noteId: 5, attachment })).toBe(state);
  });

  it('never mutates the previous state', () => {
    const before = loaded(note(1), note(2));
    const snapshot = JSON.stringify(before.notes);
    reduce(before, { type: 'note.created', note: note(3) });
    reduce(before, { type: 'note.deleted', id: 1 });
    reduce(before, { type: 'attachment.added', noteId: 1, attachment: { id: 1, filename: 'x', size: 1, content_type: '' } });
    expect(JSON.stringify(before.notes)).toBe(snapshot);
    expect(before.deleted.size).toBe(0);
  });
});

describe('parseEvent', () => {
  it('parses created and updated events from JSON text', () => {
    const n = note(4);
    expect(parseEvent(JSON.stringify({ type: 'note.created', note: n }))).toEqual({ type: 'note.created', note: n });
    expect(parseEvent(JSON.stringify({ type: 'note.updated', note: n }))).toEqual({ type: 'note.updated', note: n });
  });

  it('parses deleted events by id, or by note', () => {
    expect(parseEvent('{"type":"note.deleted","id":5}')).toEqual({ type: 'note.deleted', id: 5 });
    expect(parseEvent('{"type":"note.deleted","note":{"id":6}}')).toEqual({ type: 'note.deleted', id: 6 });
  });

  it.each([
    ['not json', 'hello'],
    ['an array', '[1,2]'],
    ['an unknown type', '{"type":"note.archived","id":1}'],
    ['a deleted event without id', '{"type":"note.deleted"}'],
    ['a created event without note', '{"type":"note.created"}'],
    ['a note without title', '{"type":"note.created","note":{"id":1,"created_at":"x"}}'],
    ['a note with a non-string body', '{"type":"note.updated","note":{"id":1,"title":"t","body":5,"created_at":"x"}}'],
  ])('rejects %s', (_, raw) => {
    expect(parseEvent(raw)).toBeNull();
  });
});

describe('isNote', () => {
  it('fills in optional fields', () => {
    const value: Record<string, unknown> = { id: 1, title: 't', created_at: '2024-01-01T00:00:00Z', body: null };
    expect(isNote(value)).toBe(true);
    expect(value).toMatchObject({ body: '', updated_at: '2024-01-01T00:00:00Z', attachments: [] });
  });

  it('drops malformed attachments and defaults content_type', () => {
    const value = {
      ...note(1),
      attachments: [{ id: 1, filename: 'a', size: 1 }, { id: 2 }, 'junk'],
    };
    expect(isNote(value)).toBe(true);
    expect(value.attachments).toEqual([{ id: 1, filename: 'a', size: 1, content_type: '' }]);
  });
});
