/**
 * Live updates over WebSocket: connects to /api/ws on the page's own host, parses note
 * events, and reconnects with exponential backoff (with jitter) whenever the socket drops.
 */
import { parseEvent } from './notes';
import type { NoteEvent } from './types';

export type LiveStatus = 'connecting' | 'live' | 'offline';

/** `ws:` for an `http:` page, `wss:` for `https:`, same host and port. */
export function websocketUrl(location: { protocol: string; host: string }, path = '/api/ws'): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

export interface BackoffOptions {
  /** First delay in ms. */
  initialMs: number;
  /** Cap in ms. */
  maxMs: number;
  /** Fraction of the delay that is randomised (0 = none, 0.5 = 50%–100% of the delay). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 15000, jitter: 0.5 };

/**
 * Delay before retry number `attempt` (0-based): initialMs * 2^attempt, capped at maxMs,
 * then reduced by up to `jitter` of itself so that many tabs do not reconnect in lockstep.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(0, attempt), 30);
  const base = Math.min(options.maxMs, options.initialMs * 2 ** exponent);
  return Math.round(base * (1 - options.jitter * random()));
}

/** The subset of the browser WebSocket used here. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  close(code?: number, reason?: string): void;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface LiveConnectionOptions {
  url: string;
  onEvent: (event: NoteEvent) => void;
  onStatus: (status: LiveStatus, info: { retryInMs: number | null }) => void;
  /**
   * Called on every successful (re)connection after the first: events may have been
   * missed while the socket was down, so the caller should reload its data.
   */
  onReconnected?: () => void;
  /** Called when an open connection is lost (not on failed attempts to connect). */
  onDisconnected?: () => void;
  createSocket?: (url: string) => SocketLike;
  timers?: Timers;
  backoff?: BackoffOptions;
  random?: () => number;
  /** A socket that has not opened after this many ms is abandoned. Default 10000. */
  connectTimeoutMs?: number;
}

export class LiveConnection {
  private socket: SocketLike | null = null;
  private retryTimer: unknown = null;
  private connectTimer: unknown = null;
  private attempt = 0;
  private everOpened = false;
  private stopped = true;
  private _status: LiveStatus = 'connecting';
  private readonly timers: Timers;
  private readonly createSocket: (url: string) => SocketLike;

  constructor(private readonly options: LiveConnectionOptions) {
    this.timers = options.timers ?? realTimers;
    this.createSocket = options.createSocket ?? ((url) => new WebSocket(url));
  }

  get status(): LiveStatus {
    return this._status;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      detach(socket);
      socket.close(1000, 'client stopping');
    }
    this.setStatus('offline', null);
  }

  /** Skips the remaining backoff wait (e.g. when the browser comes back online). */
  reconnectNow(): void {
    if (this.stopped || this.socket) return;
    this.clearTimers();
    this.connect();
  }

  private connect(): void {
    this.clearTimers();
    this.setStatus(this.downStatus(), null);
    let socket: SocketLike;
    try {
      socket = this.createSocket(this.options.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    this.connectTimer = this.timers.setTimeout(() => {
      this.connectTimer = null;
      if (this.socket === socket) this.drop(socket);
    }, this.options.connectTimeoutMs ?? 10000);

    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.clearTimers();
      this.attempt = 0;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.setStatus('live', null);
      if (reconnected) this.options.onReconnected?.();
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      const event = parseEvent(ev.data);
      if (event) this.options.onEvent(event);
    };
    socket.onclose = () => {
      if (this.socket === socket) this.drop(socket);
    };
    socket.onerror = () => {
      // A close event always follows an error; nothing to do here.
    };
  }

  private drop(socket: SocketLike): void {
    const wasOpen = this._status === 'live';
    detach(socket);
    this.socket = null;
    try {
      socket.close();
    } catch {
      // already closed
    }
    if (this.stopped) return;
    this.scheduleRetry();
    if (wasOpen) this.options.onDisconnected?.();
  }

  private scheduleRetry(): void {
    this.clearTimers();
    const delay = backoffDelay(this.attempt, this.options.backoff, this.options.random);
    this.attempt += 1;
    this.setStatus(this.downStatus(), delay);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  /**
   * Status while not connected: "connecting" for the first few tries of a fresh page,
   * "offline" after that or once a connection has been lost.
   */
  private downStatus(): LiveStatus {
    return !this.everOpened && this.attempt < 3 ? 'connecting' : 'offline';
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    if (this.connectTimer !== null) this.timers.clearTimeout(this.connectTimer);
    this.retryTimer = null;
    this.connectTimer = null;
  }

  private setStatus(status: LiveStatus, retryInMs: number | null): void {
    this._status = status;
    this.options.onStatus(status, { retryInMs });
  }
}

function detach(socket: SocketLike): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  socket.onerror = null;
}
