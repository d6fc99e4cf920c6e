// The micro-batcher on its own: what it gathers, when it runs, and how one bad input stays alone.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MicroBatcher, QueueFullError } from '../../gpu-backend/src/server/batcher';

/** A model that doubles numbers, records its batches, and refuses negative inputs. */
function doubler(options = { maxBatch: 4, maxWaitMs: 5, maxQueue: 100 }) {
  const batches: number[][] = [];
  const batcher = new MicroBatcher<number, number>(async (items) => {
    batches.push([...items]);
    await new Promise((r) => setTimeout(r, 10)); // the forward pass takes 10 ms
    if (items.length > 1 && items.some((i) => i < 0)) throw new Error('batch failed');
    return items.map((i) => (i < 0 ? new Error(`negative input ${i}`) : 2 * i));
  }, options);
  return { batcher, batches };
}

describe('MicroBatcher', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs requests arriving within the window as one batch, each caller getting its own result', async () => {
    const { batcher, batches } = doubler();
    const a = batcher.submit(1);
    await vi.advanceTimersByTimeAsync(2);
    const b = batcher.submit(2);
    await vi.advanceTimersByTimeAsync(20);
    expect(await Promise.all([a, b])).toEqual([2, 4]);
    expect(batches).toEqual([[1, 2]]);
  });

  it('runs a full batch at once, without waiting for the window', async () => {
    const { batcher, batches } = doubler();
    const all = [1, 2, 3, 4].map((i) => batcher.submit(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches).toEqual([[1, 2, 3, 4]]);
    await vi.advanceTimersByTimeAsync(10);
    expect(await Promise.all(all)).toEqual([2, 4, 6, 8]);
  });

  it('gathers the requests that arrive while the model runs into the next batch, after a new window', async () => {
    const { batcher, batches } = doubler();
    const first = [1, 2, 3, 4].map((i) => batcher.submit(i)); // full: runs at t=0 until t=10
    await vi.advanceTimersByTimeAsync(3);
    const second = [5, 6].map((i) => batcher.submit(i));
    await vi.advanceTimersByTimeAsync(8); // t=11: the first batch is done; 5 and 6 wait for company
    const late = batcher.submit(7);
    expect(batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5); // t=16: the window since the model freed up has passed
    expect(batches).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7],
    ]);
    await vi.advanceTimersByTimeAsync(10);
    expect(await Promise.all([...first, ...second, late])).toEqual([2, 4, 6, 8, 10, 12, 14]);
  });

  it('fails only the bad input of a batch: the others are rerun alone and succeed', async () => {
    const { batcher } = doubler();
    const results = Promise.allSettled([3, -1, 5].map((i) => batcher.submit(i)));
    await vi.advanceTimersByTimeAsync(100);
    const settled = await results;
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason.message).toBe('negative input -1');
    expect(settled.filter((s) => s.status === 'fulfilled').map((s) => s.value)).toEqual([6, 10]);
  });

  it('refuses work beyond the queue limit, and drain resolves once everything accepted has finished', async () => {
    const { batcher } = doubler({ maxBatch: 2, maxWaitMs: 5, maxQueue: 2 });
    const accepted = [batcher.submit(1), batcher.submit(2)];
    await expect(batcher.submit(3)).rejects.toBeInstanceOf(QueueFullError);
    let drained = false;
    void batcher.drain().then(() => {
      drained = true;
    });
    await vi.advanceTimersByTimeAsync(5);
    expect(drained).toBe(false);
    await vi.advanceTimersByTimeAsync(10);
    expect(await Promise.all(accepted)).toEqual([2, 4]);
    expect(drained).toBe(true);
    expect(batcher.items / batcher.batches).toBe(2);
  });

  it('with a zero window never waits: what queued while the model ran goes next, together', async () => {
    const { batcher, batches } = doubler({ maxBatch: 4, maxWaitMs: 0, maxQueue: 100 });
    const all = [1, 2, 3].map((i) => batcher.submit(i));
    await vi.advanceTimersByTimeAsync(100);
    expect(await Promise.all(all)).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1], [2, 3]]);
  });

  it('with a batch of one runs requests one by one (the unbatched baseline)', async () => {
    const { batcher, batches } = doubler({ maxBatch: 1, maxWaitMs: 0, maxQueue: 100 });
    const all = [1, 2, 3].map((i) => batcher.submit(i));
    await vi.advanceTimersByTimeAsync(100);
    expect(await Promise.all(all)).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1], [2], [3]]);
  });
});
