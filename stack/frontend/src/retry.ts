/**
 * Runs a task until it succeeds, waiting longer after each failure. Used to (re)load the
 * notes: at start, after the API was found unreachable, and after the live socket
 * reconnects. `kick()` asks for a run now; kicks during a run are folded into one re-run.
 */
import { backoffDelay, type BackoffOptions, type Timers } from './live';

export interface RetryLoopOptions {
  /** Called after each failed run with the error and the delay before the next run. */
  onFailure: (error: unknown, retryInMs: number) => void;
  /** Called after each successful run. */
  onSuccess: () => void;
  backoff?: BackoffOptions;
  timers?: Timers;
  random?: () => number;
}

export const RETRY_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 10000, jitter: 0.2 };

export class RetryLoop {
  private running = false;
  private rerun = false;
  private attempt = 0;
  private timer: unknown = null;
  private stopped = false;
  private readonly timers: Timers;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly options: RetryLoopOptions,
  ) {
    this.timers = options.timers ?? {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
    };
  }

  /** True while a retry is waiting (the last run failed). */
  get waiting(): boolean {
    return this.timer !== null;
  }

  /** Runs the task now (or right after the current run). Cancels a pending wait. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.cancelTimer();
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer();
  }

  private async run(): Promise<void> {
    this.running = true;
    let failed = false;
    let error: unknown;
    try {
      await this.task();
    } catch (err) {
      failed = true;
      error = err;
    }
    this.running = false;
    if (this.stopped) return;
    if (this.rerun) {
      this.rerun = false;
      void this.run();
      return;
    }
    if (!failed) {
      this.attempt = 0;
      this.options.onSuccess();
      return;
    }
    const delay = backoffDelay(this.attempt, this.options.backoff ?? RETRY_BACKOFF, this.options.random);
    this.attempt += 1;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.kick();
    }, delay);
    this.options.onFailure(error, delay);
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}
