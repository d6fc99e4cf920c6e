// One value fetched from the backend and kept per isolate for a TTL: concurrent misses share one fetch, and
// the last value seen outlives its TTL so the edge can keep answering from it while the backend is down.

export class Kept<T> {
  private value: T | null = null;
  private fetchedAt = 0;
  private inFlight: Promise<T> | null = null;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value while fresh, else `fetch`'s (one fetch for every caller that misses meanwhile). */
  async get(fetch: () => Promise<T>): Promise<T> {
    if (this.value !== null && this.now() - this.fetchedAt < this.ttlMs) return this.value;
    this.inFlight ??= fetch()
      .then((v) => {
        this.value = v;
        this.fetchedAt = this.now();
        return v;
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  /** The last value seen, even if stale. */
  get last(): T | null {
    return this.value;
  }

  /** Fetch afresh on the next get (the last value stays as the fallback). */
  invalidate(): void {
    // Not 0: a clock that starts at 0 (tests) would make that a fresh fetch.
    this.fetchedAt = Number.NEGATIVE_INFINITY;
  }
}
