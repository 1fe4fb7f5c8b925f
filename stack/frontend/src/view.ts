/**
 * DOM building. Text always goes in as textContent (never HTML), and styling only
 * through classes and attributes, never style attributes (the CSP forbids them).
 */
import { formatSize, formatTimestamp } from './format';
import type { Attachment, Id, Note } from './types';

type Attrs = Record<string, string | boolean | number | null | undefined>;
type Child = Node | string | null | undefined | false;

/** Creates an element. `true` sets a boolean attribute; null/undefined/false skip it. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** A string usable inside an element id. */
export function domId(prefix: string, id: Id): string {
  return `${prefix}-${String(id).replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export interface UploadState {
  busy: boolean;
  filename: string;
  loaded: number;
  total: number | null;
  error: string | null;
  message: string | null;
}

export interface NoteViewState {
  upload: UploadState | undefined;
  deleting: boolean;
  editing: boolean;
  attachmentUrl: (id: Id) => string;
}

/** Text for the upload status line. */
export function uploadStatusText(upload: UploadState | undefined): string {
  if (!upload) return '';
  if (upload.error) return upload.error;
  if (upload.busy) {
    if (upload.total) {
      const percent = Math.min(100, Math.floor((upload.loaded / upload.total) * 100));
      return `Uploading ${upload.filename}… ${percent}%`;
    }
    return `Uploading ${upload.filename}…`;
  }
  return upload.message ?? '';
}

/** The content of one note's <li> (the <li> itself is kept by the list). */
export function noteContent(note: Note, view: NoteViewState): HTMLElement {
  const titleId = domId('note-title', note.id);
  const inputId = domId('attach', note.id);
  const statusId = domId('attach-status', note.id);
  const title = note.title.trim() || '(untitled)';
  const busy = view.deleting || Boolean(view.upload?.busy);

  const actions = h(
    'div',
    { class: 'note-actions' },
    h(
      'button',
      {
        type: 'button',
        class: 'secondary small',
        'data-testid': 'note-edit',
        'data-action': 'edit',
        'aria-label': `Edit note “${title}”`,
        'aria-pressed': view.editing ? 'true' : 'false',
        disabled: view.deleting,
      },
      'Edit',
    ),
    h(
      'button',
      {
        type: 'button',
        class: 'danger small',
        'data-testid': 'note-delete',
        'data-action': 'delete',
        'aria-label': `Delete note “${title}”`,
        disabled: view.deleting,
      },
      view.deleting ? 'Deleting…' : 'Delete',
    ),
  );

  const created = note.created_at;
  const updated = note.updated_at;
  const meta = h(
    'p',
    { class: 'note-meta' },
    'Created ',
    h('time', { datetime: created }, formatTimestamp(created)),
    updated && updated !== created ? ' · edited ' : null,
    updated && updated !== created ? h('time', { datetime: updated }, formatTimestamp(updated)) : null,
  );

  const attachments = note.attachments.length
    ? h(
        'ul',
        { class: 'attachment-list', 'aria-label': `Attachments of “${title}”` },
        ...note.attachments.map((a) => attachmentItem(a, view.attachmentUrl)),
      )
    : null;

  const upload = view.upload;
  const progress = h('progress', {
    class: 'upload-progress',
    max: 1,
    hidden: !upload?.busy,
    'aria-label': 'Upload progress',
  });
  if (upload?.busy && upload.total) progress.value = Math.min(1, upload.loaded / upload.total);
  else progress.removeAttribute('value'); // indeterminate

  const uploadRow = h(
    'div',
    { class: 'upload', 'aria-busy': upload?.busy ? 'true' : 'false' },
    h('label', { for: inputId, class: 'upload-label' }, 'Attach a file'),
    h('input', {
      id: inputId,
      type: 'file',
      class: 'upload-input',
      'data-testid': 'attachment-input',
      'data-action': 'upload',
      'aria-describedby': statusId,
      disabled: upload?.busy,
    }),
    progress,
    h(
      'span',
      {
        id: statusId,
        class: upload?.error ? 'upload-status error' : 'upload-status',
        'data-testid': upload?.error ? 'attachment-error' : null,
        role: 'status',
      },
      uploadStatusText(upload),
    ),
  );

  return h(
    'article',
    { class: 'note-card', 'aria-labelledby': titleId, 'aria-busy': busy ? 'true' : 'false' },
    h('header', { class: 'note-head' }, h('h3', { id: titleId, class: 'note-title' }, title), actions),
    note.body ? h('p', { class: 'note-body' }, note.body) : null,
    meta,
    attachments,
    uploadRow,
  );
}

function attachmentItem(attachment: Attachment, url: (id: Id) => string): HTMLLIElement {
  return h(
    'li',
    {},
    h(
      'a',
      {
        href: url(attachment.id),
        download: attachment.filename || true,
        'data-testid': 'attachment-link',
        'data-attachment-id': String(attachment.id),
      },
      attachment.filename || `attachment ${attachment.id}`,
    ),
    ' ',
    h('span', { class: 'size' }, formatSize(attachment.size)),
  );
}
