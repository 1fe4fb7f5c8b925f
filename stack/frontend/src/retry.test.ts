import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RetryLoop } from './retry';

describe('RetryLoop', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function setup(results: boolean[]) {
    const log: string[] = [];
    let runs = 0;
    const task = vi.fn(async () => {
      runs += 1;
      const ok = results.shift() ?? true;
      if (!ok) throw new Error(`fail ${runs}`);
    });
    const loop = new RetryLoop(task, {
      onSuccess: () => log.push('ok'),
      onFailure: (err, delay) => log.push(`${(err as Error).message} retry ${delay}`),
      backoff: { initialMs: 1000, maxMs: 4000, jitter: 0 },
    });
    return { loop, task, log };
  }

  it('retries with backoff until the task succeeds', async () => {
    const { loop, task, log } = setup([false, false, false, false, true]);
    loop.kick();
    await vi.advanceTimersByTimeAsync(0);
    expect(log).toEqual(['fail 1 retry 1000']);
    expect(loop.waiting).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.advanceTimersByTimeAsync(2000);
    await vi.advanceTimersByTimeAsync(4000);
    expect(log).toEqual(['fail 1 retry 1000', 'fail 2 retry 2000', 'fail 3 retry 4000', 'fail 4 retry 4000']);
    await vi.advanceTimersByTimeAsync(4000);
    expect(log[log.length - 1]).toBe('ok');
    expect(task).toHaveBeenCalledTimes(5);
    expect(loop.waiting).toBe(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(task).toHaveBeenCalledTimes(5); // no more runs after success
  });

  it('kick() during a wait runs at once', async () => {
    const { loop, task } = setup([false, true]);
    loop.kick();
    await vi.advanceTimersByTimeAsync(0);
    loop.kick();
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(task).toHaveBeenCalledTimes(2); // the cancelled timer does not fire
  });

  it('folds kicks during a run into one re-run', async () => {
    const { loop, task, log } = setup([true, true]);
    loop.kick();
    loop.kick();
    loop.kick();
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(2);
    expect(log).toEqual(['ok']);
  });

  it('resets the backoff after a success', async () => {
    const { loop, log } = setup([false, false, true, false]);
    loop.kick();
    await vi.advanceTimersByTimeAsync(1000 + 2000);
    expect(log[log.length - 1]).toBe('ok');
    loop.kick();
    await vi.advanceTimersByTimeAsync(0);
    expect(log[log.length - 1]).toBe('fail 4 retry 1000');
  });

  it('stop() ends the loop', async () => {
    const { loop, task } = setup([false, false]);
    loop.kick();
    await vi.advanceTimersByTimeAsync(0);
    loop.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    loop.kick();
    expect(task).toHaveBeenCalledTimes(1);
  });
});
