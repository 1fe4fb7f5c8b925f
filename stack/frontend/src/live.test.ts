import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, LiveConnection, websocketUrl, type LiveStatus, type SocketLike } from './live';
import type { NoteEvent } from './types';
import { note } from './testdata';

describe('websocketUrl', () => {
  it('follows the page protocol, host and port', () => {
    expect(websocketUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/api/ws');
    expect(websocketUrl({ protocol: 'https:', host: 'notes.example' })).toBe('wss://notes.example/api/ws');
  });
});

describe('backoffDelay', () => {
  const opts = { initialMs: 500, maxMs: 15000, jitter: 0.5 };

  it('doubles from the initial delay up to the cap (no jitter when random() = 0)', () => {
    const delays = [0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n, opts, () => 0));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });

  it('jitter takes off at most the configured fraction', () => {
    expect(backoffDelay(3, opts, () => 0.999999)).toBe(2000);
    for (let i = 0; i < 100; i += 1) {
      const d = backoffDelay(2, opts);
      expect(d).toBeGreaterThanOrEqual(1000);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });

  it('treats negative attempts as the first', () => {
    expect(backoffDelay(-3, opts, () => 0)).toBe(500);
  });
});

/** A WebSocket stand-in the test opens, closes and feeds. */
class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  closed = false;
  constructor(readonly url: string) {}
  open() {
    this.readyState = 1;
    this.onopen?.({} as Event);
  }
  message(data: unknown) {
    this.onmessage?.({ data } as MessageEvent);
  }
  drop() {
    this.readyState = 3;
    this.onerror?.({} as Event);
    this.onclose?.({} as CloseEvent);
  }
  close() {
    this.closed = true;
    this.readyState = 3;
  }
}

describe('LiveConnection', () => {
  let sockets: FakeSocket[];
  let statuses: LiveStatus[];
  let events: NoteEvent[];
  let reconnects: number;
  let disconnects: number;
  let live: LiveConnection;

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    statuses = [];
    events = [];
    reconnects = 0;
    disconnects = 0;
    live = new LiveConnection({
      url: 'ws://host/api/ws',
      createSocket: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      onEvent: (e) => events.push(e),
      onStatus: (s) => statuses.push(s),
      onReconnected: () => (reconnects += 1),
      onDisconnected: () => (disconnects += 1),
      backoff: { initialMs: 100, maxMs: 1000, jitter: 0 },
      connectTimeoutMs: 5000,
      timers: { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as number) },
    });
  });

  afterEach(() => {
    live.stop();
    vi.useRealTimers();
  });

  const last = () => sockets[sockets.length - 1]!;

  it('connects, goes live and delivers parsed events, skipping junk', () => {
    live.start();
    expect(sockets).toHaveLength(1);
    expect(last().url).toBe('ws://host/api/ws');
    expect(live.status).toBe('connecting');
    last().open();
    expect(live.status).toBe('live');
    last().message(JSON.stringify({ type: 'note.created', note: note(1) }));
    last().message('not json');
    last().message(JSON.stringify({ type: 'ping' }));
    last().message(JSON.stringify({ type: 'note.deleted', id: 1 }));
    expect(events.map((e) => e.type)).toEqual(['note.created', 'note.deleted']);
    expect(reconnects).toBe(0);
  });

  it('reconnects with growing delays after drops and resyncs after reconnecting', () => {
    live.start();
    last().open();
    last().drop();
    expect(live.status).toBe('offline');
    expect(sockets).toHaveLength(1);
    expect(disconnects).toBe(1);

    vi.advanceTimersByTime(99);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2); // after 100 ms
    last().drop();
    vi.advanceTimersByTime(199);
    expect(sockets).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(3); // after 200 ms
    last().drop();
    vi.advanceTimersByTime(400);
    expect(sockets).toHaveLength(4); // after 400 ms
    expect(live.status).toBe('offline');

    expect(disconnects).toBe(1); // failed attempts are not disconnections
    last().open();
    expect(live.status).toBe('live');
    expect(reconnects).toBe(1);

    // a successful connection resets the backoff
    last().drop();
    vi.advanceTimersByTime(100);
    expect(sockets).toHaveLength(5);
  });

  it('caps the delay', () => {
    live.start();
    for (let i = 0; i < 10; i += 1) {
      last().drop();
      vi.advanceTimersByTime(1000);
    }
    expect(sockets).toHaveLength(11);
  });

  it('says connecting for the first tries of a fresh page, then offline', () => {
    live.start();
    last().drop();
    expect(live.status).toBe('connecting');
    vi.advanceTimersByTime(100);
    last().drop();
    expect(live.status).toBe('connecting');
    vi.advanceTimersByTime(200);
    last().drop();
    expect(live.status).toBe('offline');
    vi.advanceTimersByTime(400);
    expect(live.status).toBe('offline'); // no flicker back to "connecting"
    last().open();
    expect(statuses[statuses.length - 1]).toBe('live');
    expect(reconnects).toBe(0); // first success is not a *re*connection
  });

  it('abandons a socket that never opens', () => {
    live.start();
    vi.advanceTimersByTime(5000);
    expect(sockets[0]!.closed).toBe(true);
    vi.advanceTimersByTime(100);
    expect(sockets).toHaveLength(2);
  });

  it('ignores events from a socket it has given up on', () => {
    live.start();
    const first = last();
    vi.advanceTimersByTime(5000);
    first.open();
    first.message(JSON.stringify({ type: 'note.deleted', id: 1 }));
    expect(events).toEqual([]);
    expect(live.status).not.toBe('live');
  });

  it('stop() closes the socket and stops reconnecting', () => {
    live.start();
    last().open();
    live.stop();
    expect(sockets[0]!.closed).toBe(true);
    expect(live.status).toBe('offline');
    vi.advanceTimersByTime(60_000);
    expect(sockets).toHaveLength(1);
  });

  it('reconnectNow() skips the wait', () => {
    live.start();
    last().open();
    last().drop();
    live.reconnectNow();
    expect(sockets).toHaveLength(2);
    live.reconnectNow(); // already connecting: no second socket
    expect(sockets).toHaveLength(2);
  });

  it('retries when the socket cannot even be created', () => {
    let fail = true;
    const created: string[] = [];
    const conn = new LiveConnection({
      url: 'ws://x/api/ws',
      createSocket: (url) => {
        created.push(url);
        if (fail) throw new Error('SecurityError');
        return new FakeSocket(url);
      },
      onEvent: () => {},
      onStatus: () => {},
      backoff: { initialMs: 100, maxMs: 100, jitter: 0 },
    });
    conn.start();
    fail = false;
    vi.advanceTimersByTime(100);
    expect(created).toHaveLength(2);
    conn.stop();
  });
});
