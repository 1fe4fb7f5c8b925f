/** Shapes exchanged with the notes API (see README.md). */

/** Note and attachment ids are integers in the API; strings are tolerated. */
export type Id = number | string;

export interface Attachment {
  id: Id;
  filename: string;
  size: number;
  content_type: string;
}

export interface Note {
  id: Id;
  title: string;
  body: string;
  created_at: string;
  updated_at: string;
  attachments: Attachment[];
}

export interface NoteDraft {
  title: string;
  body: string;
}

export type NoteEvent =
  | { type: 'note.created'; note: Note }
  | { type: 'note.updated'; note: Note }
  | { type: 'note.deleted'; id: Id };
