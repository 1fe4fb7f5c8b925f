/**
 * The list of notes as a pure state machine: snapshots from GET /api/notes, answers to
 * our own requests and WebSocket events all go through here, in whatever order they come.
 *
 * Rules:
 * - the list is kept newest first (created_at descending, then id descending);
 * - a note is never replaced by an older version of itself (updated_at), so a late
 *   event cannot undo a newer edit;
 * - a deleted note is remembered (tombstone) and not brought back by a late create/update;
 * - a snapshot is authoritative: it replaces the list and forgets the tombstones.
 */
import type { Attachment, Id, Note, NoteEvent } from './types';

export interface NotesState {
  readonly notes: readonly Note[];
  readonly deleted: ReadonlySet<string>;
  /** False until the first snapshot arrives. */
  readonly loaded: boolean;
}

export const initialState: NotesState = { notes: [], deleted: new Set(), loaded: false };

export type NotesAction =
  | { type: 'snapshot'; notes: readonly Note[] }
  | { type: 'upsert'; note: Note }
  | { type: 'remove'; id: Id }
  | { type: 'attachment.added'; noteId: Id; attachment: Attachment }
  | NoteEvent;

export function reduce(state: NotesState, action: NotesAction): NotesState {
  switch (action.type) {
    case 'snapshot':
      return { notes: sortNotes(dedupe(action.notes)), deleted: new Set(), loaded: true };
    case 'upsert':
    case 'note.created':
    case 'note.updated':
      return upsert(state, action.note);
    case 'remove':
    case 'note.deleted':
      return remove(state, action.id);
    case 'attachment.added':
      return addAttachment(state, action.noteId, action.attachment);
  }
}

export const sameId = (a: Id, b: Id): boolean => String(a) === String(b);

export function findNote(state: NotesState, id: Id): Note | undefined {
  return state.notes.find((n) => sameId(n.id, id));
}

function upsert(state: NotesState, note: Note): NotesState {
  if (state.deleted.has(String(note.id))) return state;
  const index = state.notes.findIndex((n) => sameId(n.id, note.id));
  if (index === -1) return { ...state, notes: sortNotes([...state.notes, note]) };
  const current = state.notes[index]!;
  if (isOlder(note, current)) return state;
  const notes = [...state.notes];
  notes[index] = note;
  return { ...state, notes: sortNotes(notes) };
}

function remove(state: NotesState, id: Id): NotesState {
  const deleted = new Set(state.deleted);
  deleted.add(String(id));
  return { ...state, notes: state.notes.filter((n) => !sameId(n.id, id)), deleted };
}

function addAttachment(state: NotesState, noteId: Id, attachment: Attachment): NotesState {
  const index = state.notes.findIndex((n) => sameId(n.id, noteId));
  if (index === -1) return state;
  const note = state.notes[index]!;
  if (note.attachments.some((a) => sameId(a.id, attachment.id))) return state;
  const notes = [...state.notes];
  notes[index] = { ...note, attachments: [...note.attachments, attachment] };
  return { ...state, notes };
}

/** True when `candidate` is strictly older than `current` by updated_at. */
function isOlder(candidate: Note, current: Note): boolean {
  return compareTimestamps(candidate.updated_at, current.updated_at) < 0;
}

/** Compares ISO timestamps by time; falls back to string order when unparsable. */
export function compareTimestamps(a: string, b: string): number {
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (!Number.isNaN(ta) && !Number.isNaN(tb)) {
    if (ta !== tb) return ta < tb ? -1 : 1;
    // Same millisecond: microsecond digits (Python's isoformat) still order lexically.
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareIds(a: Id, b: Id): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  if (sa.length !== sb.length && /^\d+$/.test(sa) && /^\d+$/.test(sb)) return sa.length - sb.length;
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** Newest first: created_at descending, then id descending. Returns a new array. */
export function sortNotes(notes: readonly Note[]): Note[] {
  return [...notes].sort(
    (x, y) => compareTimestamps(y.created_at, x.created_at) || compareIds(y.id, x.id),
  );
}

function dedupe(notes: readonly Note[]): Note[] {
  const byId = new Map<string, Note>();
  for (const note of notes) {
    const key = String(note.id);
    const seen = byId.get(key);
    if (!seen || !isOlder(note, seen)) byId.set(key, note);
  }
  return [...byId.values()];
}

// ---- validation of what the server sends -------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isId(value: unknown): value is Id {
  return (typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && value !== '');
}

export function isAttachment(value: unknown): value is Attachment {
  return (
    isRecord(value) &&
    isId(value['id']) &&
    typeof value['filename'] === 'string' &&
    typeof value['size'] === 'number'
  );
}

/**
 * Checks the fields the UI relies on and normalises the optional ones in place
 * (missing body -> '', missing attachments -> [], missing content_type -> '').
 */
export function isNote(value: unknown): value is Note {
  if (!isRecord(value) || !isId(value['id']) || typeof value['title'] !== 'string') return false;
  if (typeof value['created_at'] !== 'string') return false;
  if (value['body'] == null) value['body'] = '';
  if (typeof value['body'] !== 'string') return false;
  if (typeof value['updated_at'] !== 'string') value['updated_at'] = value['created_at'];
  const attachments = value['attachments'] ?? [];
  if (!Array.isArray(attachments)) return false;
  value['attachments'] = attachments.filter(isAttachment).map((a) => ({
    ...a,
    content_type: typeof a.content_type === 'string' ? a.content_type : '',
  }));
  return true;
}

/** Parses one WebSocket message (text). Returns null for anything that is not a note event. */
export function parseEvent(raw: unknown): NoteEvent | null {
  let data: unknown = raw;
  if (typeof raw === 'string') {
    try {
      data = JSON.parse(raw);
    } catch {
      return null;
    }
  }
  if (!isRecord(data)) return null;
  const type = data['type'];
  if (type === 'note.created' || type === 'note.updated') {
    return isNote(data['note']) ? { type, note: data['note'] } : null;
  }
  if (type === 'note.deleted') {
    if (isId(data['id'])) return { type, id: data['id'] };
    const note = data['note'];
    if (isRecord(note) && isId(note['id'])) return { type, id: note['id'] };
  }
  return null;
}
