/**
 * The controller: owns the state, talks to the API and the live socket, and renders.
 * The static page skeleton is in index.html; this fills in the list, the banner and the
 * live indicator, and drives the form.
 */
import { ApiClient, ApiError, toApiError, tooLargeMessage } from './api';
import { LiveConnection, websocketUrl, type LiveStatus } from './live';
import { findNote, initialState, reduce, sameId, type NotesAction, type NotesState } from './notes';
import { RetryLoop } from './retry';
import type { Id, Note } from './types';
import { domId, h, noteContent, uploadStatusText, type UploadState } from './view';

export const UNREACHABLE_MESSAGE = 'The API is not reachable — retrying…';

interface Elements {
  form: HTMLFormElement;
  formHeading: HTMLElement;
  title: HTMLInputElement;
  body: HTMLTextAreaElement;
  submit: HTMLButtonElement;
  cancel: HTMLButtonElement;
  formError: HTMLElement;
  list: HTMLUListElement;
  placeholder: HTMLElement;
  count: HTMLElement;
  banner: HTMLElement;
  live: HTMLElement;
}

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

function byTestId<T extends HTMLElement>(testId: string): T {
  const el = document.querySelector<T>(`[data-testid="${testId}"]`);
  if (!el) throw new Error(`[data-testid=${testId}] is missing from index.html`);
  return el;
}

export class App {
  private state: NotesState = initialState;
  private editingId: Id | null = null;
  private submitting = false;
  private readonly uploads = new Map<string, UploadState>();
  private readonly deleting = new Set<string>();
  /** Message while the notes cannot be loaded (API down or failing); cleared on recovery. */
  private loadError: string | null = null;
  /** Message from the last failed action; cleared on dismiss or the next successful action. */
  private actionError: string | null = null;
  private readonly items = new Map<string, { li: HTMLLIElement; key: string }>();
  private readonly el: Elements;
  private readonly loader: RetryLoop;
  private readonly live: LiveConnection;

  constructor(private readonly api: ApiClient = new ApiClient()) {
    this.el = {
      form: byTestId('note-form'),
      formHeading: byId('form-heading'),
      title: byTestId('note-title-input'),
      body: byTestId('note-body-input'),
      submit: byTestId('note-submit'),
      cancel: byId('note-cancel'),
      formError: byId('note-form-error'),
      list: byTestId('note-list'),
      placeholder: byId('list-placeholder'),
      count: byId('note-count'),
      banner: byId('banner-region'),
      live: byTestId('live-status'),
    };
    this.loader = new RetryLoop(() => this.loadNotes(), {
      onSuccess: () => {
        this.loadError = null;
        this.render();
      },
      onFailure: (err) => {
        const error = toApiError(err);
        this.loadError = error.unreachable ? UNREACHABLE_MESSAGE : `${error.message} — retrying…`;
        this.render();
      },
    });
    this.live = new LiveConnection({
      url: websocketUrl(window.location),
      onEvent: (event) => this.dispatch(event),
      onStatus: (status, info) => this.showLiveStatus(status, info.retryInMs),
      onReconnected: () => this.loader.kick(),
      // Lost the socket: check whether the API itself is gone (shows the banner if so).
      onDisconnected: () => this.loader.kick(),
    });
  }

  start(): void {
    this.el.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.submitForm();
    });
    this.el.cancel.addEventListener('click', () => this.stopEditing(true));
    this.el.form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.editingId !== null) this.stopEditing(true);
    });
    this.el.list.addEventListener('click', (ev) => this.onListClick(ev));
    this.el.list.addEventListener('change', (ev) => this.onListChange(ev));
    this.el.banner.addEventListener('click', (ev) => {
      if ((ev.target as HTMLElement).closest('[data-action="dismiss"]')) {
        this.actionError = null;
        this.render();
      }
    });
    window.addEventListener('online', () => {
      this.live.reconnectNow();
      if (this.loader.waiting) this.loader.kick();
    });
    this.render();
    this.loader.kick();
    this.live.start();
  }

  // ---- state --------------------------------------------------------------------------

  private dispatch(action: NotesAction): void {
    this.state = reduce(this.state, action);
    if (this.editingId !== null && !findNote(this.state, this.editingId) && this.state.loaded) {
      this.stopEditing(false);
      this.actionError = 'The note you were editing was deleted.';
    }
    this.render();
  }

  private async loadNotes(): Promise<void> {
    const notes = await this.api.listNotes();
    this.dispatch({ type: 'snapshot', notes });
  }

  /** Records a failed action; an unreachable API starts the reload loop instead. */
  private failed(err: unknown, what: string | ((error: ApiError) => string)): ApiError {
    const error = toApiError(err);
    if (error.unreachable) {
      this.loadError = UNREACHABLE_MESSAGE;
      this.loader.kick();
    } else {
      this.actionError = typeof what === 'function' ? what(error) : `${what}: ${error.message}`;
    }
    this.render();
    return error;
  }

  private succeeded(): void {
    this.actionError = null;
    // The API answered, so if it was marked unreachable, reload now instead of waiting.
    if (this.loadError) this.loader.kick();
  }

  // ---- form ---------------------------------------------------------------------------

  private async submitForm(): Promise<void> {
    if (this.submitting) return;
    const title = this.el.title.value.trim();
    const body = this.el.body.value;
    if (!title) {
      this.showFormError('Please enter a title.');
      this.el.title.focus();
      return;
    }
    this.showFormError(null);
    this.setSubmitting(true);
    const editingId = this.editingId;
    try {
      if (editingId === null) {
        const note = await this.api.createNote({ title, body });
        this.succeeded();
        this.dispatch({ type: 'upsert', note });
        this.el.form.reset();
      } else {
        const note = await this.api.updateNote(editingId, { title, body });
        this.succeeded();
        this.dispatch({ type: 'upsert', note });
        this.stopEditing(false);
      }
      this.el.title.focus();
    } catch (err) {
      const error = this.failed(err, editingId === null ? 'Could not add the note' : 'Could not save the note');
      if (editingId !== null && error.status === 404) {
        this.dispatch({ type: 'remove', id: editingId });
      }
      // Other errors are shown in the banner; this one tells that nothing was lost.
      if (error.unreachable) this.showFormError('The API is not reachable. Your text is kept; try again.');
    } finally {
      this.setSubmitting(false);
      this.render();
    }
  }

  private setSubmitting(on: boolean): void {
    this.submitting = on;
    this.el.submit.disabled = on;
    this.el.form.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  private showFormError(message: string | null): void {
    this.el.formError.textContent = message ?? '';
    this.el.formError.hidden = !message;
  }

  private startEditing(note: Note): void {
    this.editingId = note.id;
    this.el.title.value = note.title;
    this.el.body.value = note.body;
    this.showFormError(null);
    this.render();
    this.el.form.scrollIntoView?.({ block: 'nearest' });
    this.el.title.focus();
  }

  private stopEditing(restoreFocus: boolean): void {
    const id = this.editingId;
    this.editingId = null;
    this.el.form.reset();
    this.showFormError(null);
    this.render();
    if (restoreFocus && id !== null) {
      this.items.get(String(id))?.li.querySelector<HTMLElement>('[data-action="edit"]')?.focus();
    }
  }

  // ---- list actions -------------------------------------------------------------------

  private noteIdOf(target: EventTarget | null): string | null {
    const item = (target as HTMLElement | null)?.closest<HTMLElement>('[data-testid="note-item"]');
    return item?.dataset['noteId'] ?? null;
  }

  private onListClick(ev: MouseEvent): void {
    const button = (ev.target as HTMLElement).closest<HTMLButtonElement>('button[data-action]');
    const key = this.noteIdOf(button);
    if (!button || key === null) return;
    const note = findNote(this.state, key);
    if (!note) return;
    if (button.dataset['action'] === 'edit') {
      if (this.editingId !== null && sameId(this.editingId, note.id)) this.stopEditing(true);
      else this.startEditing(note);
    } else if (button.dataset['action'] === 'delete') {
      void this.deleteNote(note);
    }
  }

  private async deleteNote(note: Note): Promise<void> {
    const key = String(note.id);
    if (this.deleting.has(key)) return;
    const title = note.title.trim() || '(untitled)';
    if (!window.confirm(`Delete the note “${title}”? This cannot be undone.`)) return;
    this.deleting.add(key);
    this.render();
    try {
      await this.api.deleteNote(note.id);
      this.succeeded();
      this.deleting.delete(key);
      this.dispatch({ type: 'remove', id: note.id });
      this.el.title.focus();
    } catch (err) {
      this.deleting.delete(key);
      this.failed(err, 'Could not delete the note');
    }
  }

  private onListChange(ev: Event): void {
    const input = ev.target as HTMLInputElement;
    if (input.dataset['action'] !== 'upload') return;
    const key = this.noteIdOf(input);
    const file = input.files?.[0];
    if (key === null || !file) return;
    const note = findNote(this.state, key);
    if (note) void this.upload(note.id, file);
  }

  private async upload(noteId: Id, file: File): Promise<void> {
    const key = String(noteId);
    if (this.uploads.get(key)?.busy) return;
    const upload: UploadState = {
      busy: true,
      filename: file.name,
      loaded: 0,
      total: file.size || null,
      error: null,
      message: null,
    };
    this.uploads.set(key, upload);
    this.render();
    try {
      const attachment = await this.api.uploadAttachment(noteId, file, file.name, {
        onProgress: (loaded, total) => {
          upload.loaded = loaded;
          upload.total = total ?? upload.total;
          this.showUploadProgress(key, upload);
        },
      });
      this.succeeded();
      this.uploads.set(key, { ...upload, busy: false, message: `Uploaded ${file.name}.` });
      this.dispatch({ type: 'attachment.added', noteId, attachment });
    } catch (err) {
      const error = this.failed(err, (e) =>
        e.tooLarge ? tooLargeMessage(e.detail, file.name) : `Could not upload “${file.name}”: ${e.message}`,
      );
      this.uploads.set(key, {
        ...upload,
        busy: false,
        error: error.unreachable ? 'Upload failed: the API is not reachable.' : error.message,
      });
      this.render();
    }
  }

  /** Updates a progress bar in place (no re-render for every progress event). */
  private showUploadProgress(key: string, upload: UploadState): void {
    const li = this.items.get(key)?.li;
    if (!li) return;
    const progress = li.querySelector('progress');
    if (progress && upload.total) progress.value = Math.min(1, upload.loaded / upload.total);
    const status = li.querySelector('.upload-status');
    if (status) status.textContent = uploadStatusText(upload);
  }

  // ---- rendering ----------------------------------------------------------------------

  private showLiveStatus(status: LiveStatus, retryInMs: number | null): void {
    const el = this.el.live;
    el.dataset['state'] = status;
    el.textContent = status === 'connecting' ? 'connecting…' : status;
    const detail =
      status === 'live'
        ? 'Live updates: connected'
        : retryInMs !== null
          ? `Live updates: ${status}, retrying in ${Math.max(1, Math.round(retryInMs / 1000))} s`
          : `Live updates: ${status}`;
    el.title = detail;
    el.setAttribute('aria-label', detail);
  }

  private render(): void {
    this.renderForm();
    this.renderBanner();
    this.renderList();
  }

  private renderForm(): void {
    const editing = this.editingId !== null;
    this.el.form.dataset['mode'] = editing ? 'edit' : 'create';
    if (editing) this.el.form.dataset['noteId'] = String(this.editingId);
    else delete this.el.form.dataset['noteId'];
    this.el.formHeading.textContent = editing ? 'Edit note' : 'New note';
    this.el.submit.textContent = this.submitting
      ? editing
        ? 'Saving…'
        : 'Adding…'
      : editing
        ? 'Save changes'
        : 'Add note';
    this.el.cancel.hidden = !editing;
  }

  private renderBanner(): void {
    const messages: Node[] = [];
    if (this.loadError) messages.push(h('p', { class: 'banner-line' }, this.loadError));
    if (this.actionError) {
      messages.push(
        h(
          'p',
          { class: 'banner-line' },
          this.actionError,
          ' ',
          h('button', { type: 'button', class: 'link', 'data-action': 'dismiss' }, 'Dismiss'),
        ),
      );
    }
    const current = this.el.banner.querySelector<HTMLElement>('[data-testid="api-error"]');
    if (!messages.length) {
      current?.remove();
      return;
    }
    const banner = h(
      'div',
      { class: this.loadError ? 'banner banner-down' : 'banner', 'data-testid': 'api-error' },
      ...messages,
    );
    // Replace only when the text changed, so screen readers do not re-announce it.
    if (current && current.textContent === banner.textContent) return;
    if (current) current.replaceWith(banner);
    else this.el.banner.append(banner);
  }

  private renderList(): void {
    const { notes, loaded } = this.state;
    this.el.count.textContent = loaded ? `(${notes.length})` : '';
    this.el.placeholder.hidden = loaded && notes.length > 0;
    this.el.placeholder.textContent = loaded
      ? 'No notes yet — write the first one.'
      : this.loadError
        ? 'The notes could not be loaded yet.'
        : 'Loading notes…';

    const seen = new Set<string>();
    const list = this.el.list;
    notes.forEach((note, index) => {
      const key = String(note.id);
      seen.add(key);
      const view = {
        upload: this.uploads.get(key),
        deleting: this.deleting.has(key),
        editing: this.editingId !== null && sameId(this.editingId, note.id),
        attachmentUrl: (id: Id) => this.api.attachmentUrl(id),
      };
      const renderKey = JSON.stringify([note, view.upload, view.deleting, view.editing]);
      let entry = this.items.get(key);
      if (!entry) {
        const li = h('li', { class: 'note', 'data-testid': 'note-item', 'data-note-id': key, id: domId('note', note.id) });
        entry = { li, key: '' };
        this.items.set(key, entry);
      }
      if (entry.key !== renderKey) {
        const focused = entry.li.contains(document.activeElement)
          ? (document.activeElement as HTMLElement).dataset['action']
          : undefined;
        entry.li.replaceChildren(noteContent(note, view));
        entry.li.classList.toggle('editing', view.editing);
        entry.key = renderKey;
        if (focused) entry.li.querySelector<HTMLElement>(`[data-action="${focused}"]`)?.focus();
      }
      // Move into place only when out of place (moving a node would blur its focus).
      const at = list.children[index];
      if (at !== entry.li) list.insertBefore(entry.li, at ?? null);
    });
    for (const [key, entry] of this.items) {
      if (!seen.has(key)) {
        entry.li.remove();
        this.items.delete(key);
        this.uploads.delete(key);
      }
    }
  }
}
