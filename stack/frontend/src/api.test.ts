import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, extractDetail, httpErrorMessage, toApiError, tooLargeMessage, type XhrLike } from './api';
import { note } from './testdata';

type Call = { url: string; init: RequestInit | undefined };

/** A fetch that answers from a queue of responses (or throws an error from it). */
function fakeFetch(...answers: Array<Response | Error>) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    const answer = answers.shift();
    if (!answer) throw new Error('unexpected request');
    if (answer instanceof Error) throw answer;
    return answer;
  });
  return { fetch, calls };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

async function caught(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected a rejection');
}

describe('ApiClient JSON requests', () => {
  it('lists notes from GET /api/notes', async () => {
    const { fetch, calls } = fakeFetch(json(200, [note(1), note(2)]));
    const notes = await new ApiClient({ fetch }).listNotes();
    expect(notes.map((n) => n.id)).toEqual([1, 2]);
    expect(calls[0]!.url).toBe('/api/notes');
    expect(calls[0]!.init!.method).toBe('GET');
  });

  it('accepts a list wrapped in an object', async () => {
    const { fetch } = fakeFetch(json(200, { items: [note(1)] }));
    expect(await new ApiClient({ fetch }).listNotes()).toHaveLength(1);
  });

  it('rejects a list that is not a list', async () => {
    const { fetch } = fakeFetch(json(200, { hello: 'world' }));
    const err = await caught(new ApiClient({ fetch }).listNotes());
    expect(err.kind).toBe('invalid');
    expect(err.unreachable).toBe(false);
  });

  it('treats an HTML answer (misrouted to the SPA) as invalid, not as notes', async () => {
    const { fetch } = fakeFetch(new Response('<!doctype html><html></html>', { status: 200 }));
    const err = await caught(new ApiClient({ fetch }).listNotes());
    expect(err.kind).toBe('invalid');
    expect(err.message).toMatch(/not JSON/);
  });

  it('creates with POST and a JSON body', async () => {
    const created = note(5, { title: 'Hello' });
    const { fetch, calls } = fakeFetch(json(201, created));
    const result = await new ApiClient({ fetch }).createNote({ title: 'Hello', body: 'x' });
    expect(result).toEqual(created);
    const init = calls[0]!.init!;
    expect(init.method).toBe('POST');
    expect(JSON.parse(init.body as string)).toEqual({ title: 'Hello', body: 'x' });
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it('updates with PATCH on the note URL, escaping the id', async () => {
    const { fetch, calls } = fakeFetch(json(200, note(3)));
    await new ApiClient({ fetch, base: '/api/' }).updateNote('a/b', { title: 't' });
    expect(calls[0]!.url).toBe('/api/notes/a%2Fb');
    expect(calls[0]!.init!.method).toBe('PATCH');
    expect(JSON.parse(calls[0]!.init!.body as string)).toEqual({ title: 't' });
  });

  it('deletes with DELETE; 204 and 404 both succeed', async () => {
    const { fetch, calls } = fakeFetch(new Response(null, { status: 204 }), json(404, { detail: 'Not Found' }));
    const api = new ApiClient({ fetch });
    await expect(api.deleteNote(1)).resolves.toBeUndefined();
    await expect(api.deleteNote(1)).resolves.toBeUndefined();
    expect(calls.map((c) => c.init!.method)).toEqual(['DELETE', 'DELETE']);
  });

  it('a failed delete other than 404 rejects', async () => {
    const { fetch } = fakeFetch(json(500, { detail: 'boom' }));
    const err = await caught(new ApiClient({ fetch }).deleteNote(1));
    expect(err.status).toBe(500);
    expect(err.message).toBe('The API returned an error (HTTP 500): boom');
    expect(err.unreachable).toBe(false);
  });

  it('reports a network failure as unreachable', async () => {
    const { fetch } = fakeFetch(new TypeError('Failed to fetch'));
    const err = await caught(new ApiClient({ fetch }).listNotes());
    expect(err.kind).toBe('network');
    expect(err.unreachable).toBe(true);
    expect(err.status).toBeNull();
  });

  it.each([502, 503, 504])('reports a proxy %d as unreachable', async (status) => {
    const { fetch } = fakeFetch(new Response('', { status }));
    const err = await caught(new ApiClient({ fetch }).listNotes());
    expect(err.kind).toBe('http');
    expect(err.status).toBe(status);
    expect(err.unreachable).toBe(true);
  });

  it('shows FastAPI validation errors readably', async () => {
    const { fetch } = fakeFetch(
      json(422, { detail: [{ loc: ['body', 'title'], msg: 'Field required', type: 'missing' }] }),
    );
    const err = await caught(new ApiClient({ fetch }).createNote({ title: '', body: '' }));
    expect(err.status).toBe(422);
    expect(err.detail).toBe('title: Field required');
    expect(err.message).toBe('The API returned an error (HTTP 422): title: Field required');
  });

  it('times out a request that hangs', async () => {
    vi.useFakeTimers();
    try {
      const fetch = vi.fn(
        (_url: string, init?: RequestInit) =>
          new Promise<Response>((_resolve, reject) => {
            init!.signal!.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
          }),
      );
      const pending = caught(new ApiClient({ fetch, timeoutMs: 1000 }).listNotes());
      await vi.advanceTimersByTimeAsync(1001);
      const err = await pending;
      expect(err.kind).toBe('timeout');
      expect(err.unreachable).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('builds attachment download URLs', () => {
    expect(new ApiClient().attachmentUrl(12)).toBe('/api/attachments/12');
  });
});

describe('extractDetail', () => {
  it.each([
    ['{"detail":"Note not found"}', 'Note not found'],
    ['{"message":"nope"}', 'nope'],
    ['{"detail":[{"loc":["body","title"],"msg":"too long"},{"msg":"bad"}]}', 'title: too long; bad'],
    ['"plain json string"', 'plain json string'],
    ['Request Entity Too Large', 'Request Entity Too Large'],
    ['', null],
    ['   ', null],
    ['<html><body>502 Bad Gateway</body></html>', null],
    ['{"detail":""}', null],
    ['{"other":1}', null],
    ['null', null],
  ])('%s -> %s', (body, expected) => {
    expect(extractDetail(body)).toBe(expected);
  });
});

describe('httpErrorMessage', () => {
  it('explains 413', () => {
    expect(httpErrorMessage(413, null)).toBe('The file is too large to upload.');
    expect(httpErrorMessage(413, 'Request Entity Too Large')).toBe('The file is too large to upload.');
    expect(httpErrorMessage(413, 'File exceeds the 10 MiB limit')).toBe(
      'The file is too large to upload (File exceeds the 10 MiB limit).',
    );
  });
  it('falls back to a generic reason', () => {
    expect(httpErrorMessage(500, null)).toBe('The API returned an error (HTTP 500): server error');
    expect(httpErrorMessage(400, null)).toBe('The API returned an error (HTTP 400): request failed');
  });
});

describe('tooLargeMessage', () => {
  it('names the file and keeps a useful reason', () => {
    expect(tooLargeMessage('The file is larger than the limit of 10485760 bytes.', 'big.bin')).toBe(
      '“big.bin” is too large to upload (The file is larger than the limit of 10485760 bytes).',
    );
  });
  it.each(['Content Too Large', 'Request Entity Too Large', 'Payload Too Large.', '', null])(
    'drops a reason that only repeats the status (%s)',
    (detail) => {
      expect(tooLargeMessage(detail, 'big.bin')).toBe('“big.bin” is too large to upload.');
    },
  );
});

describe('toApiError', () => {
  it('wraps foreign errors and keeps ApiErrors', () => {
    const own = new ApiError('http', 'x', 500);
    expect(toApiError(own)).toBe(own);
    const wrapped = toApiError(new Error('weird'));
    expect(wrapped.kind).toBe('invalid');
    expect(wrapped.message).toBe('weird');
  });
});

/** A scriptable stand-in for XMLHttpRequest. */
class FakeXhr implements XhrLike {
  static last: FakeXhr | null = null;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  sent: FormData | null = null;
  aborted = false;
  status = 0;
  responseText = '';
  upload: XhrLike['upload'] = { onprogress: null };
  onload: XhrLike['onload'] = null;
  onerror: XhrLike['onerror'] = null;
  onabort: XhrLike['onabort'] = null;
  ontimeout: XhrLike['ontimeout'] = null;

  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  send(body: FormData) {
    this.sent = body;
  }
  abort() {
    this.aborted = true;
    this.onabort?.({} as ProgressEvent);
  }
  progress(loaded: number, total: number | null) {
    this.upload.onprogress?.({ loaded, total: total ?? 0, lengthComputable: total !== null } as ProgressEvent);
  }
  respond(status: number, text: string) {
    this.status = status;
    this.responseText = text;
    this.onload?.({} as ProgressEvent);
  }
}

describe('ApiClient.uploadAttachment', () => {
  const api = () => new ApiClient({ createXhr: () => new FakeXhr() });
  const file = new Blob(['hello world'], { type: 'text/plain' });

  it('posts multipart field "file", reports progress and resolves with the attachment', async () => {
    const progress: Array<[number, number | null]> = [];
    const pending = api().uploadAttachment(4, file, 'hello.txt', {
      onProgress: (loaded, total) => progress.push([loaded, total]),
    });
    const xhr = FakeXhr.last!;
    expect(xhr.method).toBe('POST');
    expect(xhr.url).toBe('/api/notes/4/attachments');
    const sent = xhr.sent!.get('file') as File;
    expect(sent.name).toBe('hello.txt');
    expect(await sent.text()).toBe('hello world');
    xhr.progress(5, 11);
    xhr.progress(11, 11);
    xhr.progress(3, null);
    const attachment = { id: 9, filename: 'hello.txt', size: 11, content_type: 'text/plain' };
    xhr.respond(201, JSON.stringify(attachment));
    await expect(pending).resolves.toEqual(attachment);
    expect(progress).toEqual([
      [5, 11],
      [11, 11],
      [3, null],
    ]);
  });

  it('rejects 413 with a "too large" error, using the server detail', async () => {
    const pending = api().uploadAttachment(4, file, 'big.bin');
    FakeXhr.last!.respond(413, JSON.stringify({ detail: 'Attachment exceeds 1 MiB' }));
    const err = await caught(pending);
    expect(err.status).toBe(413);
    expect(err.tooLarge).toBe(true);
    expect(err.unreachable).toBe(false);
    expect(err.message).toBe('The file is too large to upload (Attachment exceeds 1 MiB).');
  });

  it('rejects 413 from the proxy (empty body) with the generic message', async () => {
    const pending = api().uploadAttachment(4, file, 'big.bin');
    FakeXhr.last!.respond(413, '');
    expect((await caught(pending)).message).toBe('The file is too large to upload.');
  });

  it('reports a network error as unreachable', async () => {
    const pending = api().uploadAttachment(4, file, 'x');
    FakeXhr.last!.onerror?.({} as ProgressEvent);
    const err = await caught(pending);
    expect(err.kind).toBe('network');
    expect(err.unreachable).toBe(true);
  });

  it('rejects an answer that is not an attachment', async () => {
    const pending = api().uploadAttachment(4, file, 'x');
    FakeXhr.last!.respond(201, '{"ok":true}');
    expect((await caught(pending)).kind).toBe('invalid');
  });

  it('can be cancelled with an AbortSignal', async () => {
    const controller = new AbortController();
    const pending = api().uploadAttachment(4, file, 'x', { signal: controller.signal });
    controller.abort();
    const err = await caught(pending);
    expect(FakeXhr.last!.aborted).toBe(true);
    expect(err.kind).toBe('aborted');
    expect(err.unreachable).toBe(false);
  });
});
