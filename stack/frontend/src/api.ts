/**
 * Client for the notes API (same origin, under /api).
 *
 * Every failure is an ApiError, whose `unreachable` flag tells "the API is down"
 * (network error, timeout, 502/503/504 from the proxy) apart from "the API answered
 * with an error" (4xx, 500), so the UI can show the right message.
 */
import { isAttachment, isNote } from './notes';
import type { Attachment, Id, Note, NoteDraft } from './types';

export type ApiErrorKind = 'network' | 'timeout' | 'http' | 'invalid' | 'aborted';

/** Statuses a reverse proxy answers with when the backend behind it is not there. */
const UNREACHABLE_STATUSES = new Set([502, 503, 504]);

export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    /** HTTP status, or null when no response arrived. */
    readonly status: number | null = null,
    /** The server's own explanation (FastAPI's `detail`), when it gave one. */
    readonly detail: string | null = null,
  ) {
    super(message);
  }

  /** True when the API could not be reached at all (as opposed to answering with an error). */
  get unreachable(): boolean {
    return (
      this.kind === 'network' ||
      this.kind === 'timeout' ||
      (this.status !== null && UNREACHABLE_STATUSES.has(this.status))
    );
  }

  get tooLarge(): boolean {
    return this.status === 413;
  }
}

/** Turns anything thrown into an ApiError (non-API errors become `invalid`). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError('invalid', message || 'Unexpected error');
}

/**
 * Extracts a readable message from an error body: FastAPI's `{"detail": "..."}`,
 * its validation form `{"detail": [{"loc": [...], "msg": "..."}]}`, `{"message": "..."}`,
 * or short plain text. Returns null when there is nothing usable.
 */
export function extractDetail(body: string): string | null {
  const text = body.trim();
  if (!text) return null;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // Plain text (e.g. from the proxy); HTML error pages are not worth showing.
    if (text.startsWith('<') || text.length > 300) return null;
    return text;
  }
  if (typeof data === 'string') return data || null;
  if (!data || typeof data !== 'object') return null;
  const record = data as Record<string, unknown>;
  const detail = record['detail'] ?? record['message'] ?? record['error'];
  if (typeof detail === 'string') return detail || null;
  if (Array.isArray(detail)) {
    const parts = detail
      .map((item) => {
        if (typeof item === 'string') return item;
        if (!item || typeof item !== 'object') return null;
        const { msg, loc } = item as { msg?: unknown; loc?: unknown };
        if (typeof msg !== 'string') return null;
        const field = Array.isArray(loc) ? loc.filter((p) => p !== 'body').join('.') : '';
        return field ? `${field}: ${msg}` : msg;
      })
      .filter((part): part is string => Boolean(part));
    return parts.length ? parts.join('; ') : null;
  }
  return null;
}

/** A detail that only repeats the 413 reason phrase, adding nothing. */
const GENERIC_413 = /^(request entity|payload|content) too large\.?$/i;

/** "The file is too large to upload" (or `“name” is …`), with the server's reason when it gave one. */
export function tooLargeMessage(detail: string | null, filename?: string): string {
  const subject = filename ? `“${filename}”` : 'The file';
  const reason = detail && !GENERIC_413.test(detail.trim()) ? detail.trim().replace(/\.$/, '') : null;
  return reason ? `${subject} is too large to upload (${reason}).` : `${subject} is too large to upload.`;
}

/** The message shown to the user for an error response. */
export function httpErrorMessage(status: number, detail: string | null): string {
  if (status === 413) return tooLargeMessage(detail);
  if (UNREACHABLE_STATUSES.has(status)) return 'The API is not reachable.';
  const reason = detail ?? (status >= 500 ? 'server error' : 'request failed');
  return `The API returned an error (HTTP ${status}): ${reason}`;
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** The subset of XMLHttpRequest used for uploads (so tests can supply a fake). */
export interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: FormData): void;
  abort(): void;
  readonly status: number;
  readonly responseText: string;
  readonly upload: { onprogress: ((ev: ProgressEvent) => void) | null };
  onload: ((ev: ProgressEvent) => void) | null;
  onerror: ((ev: ProgressEvent) => void) | null;
  onabort: ((ev: ProgressEvent) => void) | null;
  ontimeout: ((ev: ProgressEvent) => void) | null;
}

export interface ApiClientOptions {
  /** URL prefix of the API. Default `/api`. */
  base?: string;
  fetch?: FetchLike;
  createXhr?: () => XhrLike;
  /** Milliseconds before a JSON request is abandoned. Default 15000. */
  timeoutMs?: number;
}

/** Upload progress: `loaded` of `total` bytes (total is null when unknown). */
export type ProgressHandler = (loaded: number, total: number | null) => void;

export class ApiClient {
  private readonly base: string;
  private readonly fetchImpl: FetchLike;
  private readonly createXhr: () => XhrLike;
  private readonly timeoutMs: number;

  constructor(options: ApiClientOptions = {}) {
    this.base = (options.base ?? '/api').replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.createXhr = options.createXhr ?? (() => new XMLHttpRequest());
    this.timeoutMs = options.timeoutMs ?? 15000;
  }

  async listNotes(): Promise<Note[]> {
    const data = await this.request('GET', '/notes');
    // Accept a bare list, or a list wrapped as {notes: [...]} / {items: [...]}.
    const list = Array.isArray(data)
      ? data
      : data && typeof data === 'object'
        ? ((data as Record<string, unknown>)['notes'] ?? (data as Record<string, unknown>)['items'])
        : undefined;
    if (!Array.isArray(list)) throw invalid('a list of notes');
    return list.filter(isNote);
  }

  async getNote(id: Id): Promise<Note> {
    return expectNote(await this.request('GET', `/notes/${enc(id)}`));
  }

  async createNote(draft: NoteDraft): Promise<Note> {
    return expectNote(await this.request('POST', '/notes', draft));
  }

  async updateNote(id: Id, patch: Partial<NoteDraft>): Promise<Note> {
    return expectNote(await this.request('PATCH', `/notes/${enc(id)}`, patch));
  }

  /** Deletes a note. A 404 counts as success: the note is gone either way. */
  async deleteNote(id: Id): Promise<void> {
    try {
      await this.request('DELETE', `/notes/${enc(id)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return;
      throw err;
    }
  }

  attachmentUrl(id: Id): string {
    return `${this.base}/attachments/${enc(id)}`;
  }

  /**
   * Uploads one file as multipart field `file`. Uses XMLHttpRequest because fetch cannot
   * report upload progress. Rejects with an ApiError (413 -> `tooLarge`).
   */
  uploadAttachment(
    noteId: Id,
    file: Blob,
    filename: string,
    options: { onProgress?: ProgressHandler; signal?: AbortSignal } = {},
  ): Promise<Attachment> {
    return new Promise<Attachment>((resolve, reject) => {
      const xhr = this.createXhr();
      const form = new FormData();
      form.append('file', file, filename);
      const onAbortSignal = () => xhr.abort();
      const cleanup = () => options.signal?.removeEventListener('abort', onAbortSignal);
      xhr.open('POST', `${this.base}/notes/${enc(noteId)}/attachments`);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.onprogress = (ev) => {
        options.onProgress?.(ev.loaded, ev.lengthComputable ? ev.total : null);
      };
      xhr.onload = () => {
        cleanup();
        try {
          const data = parseBody(xhr.status, xhr.responseText);
          if (!isAttachment(data)) throw invalid('an attachment');
          resolve(data);
        } catch (err) {
          reject(toApiError(err));
        }
      };
      xhr.onerror = () => {
        cleanup();
        reject(new ApiError('network', 'The API is not reachable.'));
      };
      xhr.ontimeout = () => {
        cleanup();
        reject(new ApiError('timeout', 'The API did not answer in time.'));
      };
      xhr.onabort = () => {
        cleanup();
        reject(new ApiError('aborted', 'The upload was cancelled.'));
      };
      if (options.signal?.aborted) {
        reject(new ApiError('aborted', 'The upload was cancelled.'));
        return;
      }
      options.signal?.addEventListener('abort', onAbortSignal);
      xhr.send(form);
    });
  }

  /** Sends a JSON request; resolves with the parsed body (undefined for 204). */
  async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    init.signal = controller.signal;
    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(this.base + path, init);
      text = await response.text();
    } catch (err) {
      if (timedOut) throw new ApiError('timeout', 'The API did not answer in time.');
      if (err instanceof ApiError) throw err;
      throw new ApiError('network', 'The API is not reachable.');
    } finally {
      clearTimeout(timer);
    }
    return parseBody(response.status, text);
  }
}

function parseBody(status: number, text: string): unknown {
  if (status === 0) throw new ApiError('network', 'The API is not reachable.');
  if (status < 200 || status >= 300) {
    const detail = extractDetail(text);
    throw new ApiError('http', httpErrorMessage(status, detail), status, detail);
  }
  if (status === 204 || text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError('invalid', 'The API returned a response that is not JSON.', status);
  }
}

function expectNote(data: unknown): Note {
  if (!isNote(data)) throw invalid('a note');
  return data;
}

function invalid(what: string): ApiError {
  return new ApiError('invalid', `The API returned something other than ${what}.`);
}

function enc(id: Id): string {
  return encodeURIComponent(String(id));
}
