// Micro-batching: requests arriving within a few ms (or until a batch is full) run as one forward pass;
// each caller gets its own result, and one bad input never fails the others.
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

export interface BatcherOptions {
  /** Largest batch one forward pass takes. */
  maxBatch: number;
  /**
   * How long a batch waits for company, from its first request or from the model freeing up. 0: never wait
   * (what queued while the model ran still goes together; with maxBatch 1, strictly one by one).
   */
  maxWaitMs: number;
  /** Requests waiting or running beyond which new ones are refused (the caller answers 503). */
  maxQueue: number;
}

/** How one batch went (metrics and request logs): its size, each item's wait in the queue, the run's time. */
export interface BatchRun {
  size: number;
  queueMs: number[];
  runMs: number;
}

/** One request's share of its batch, for its log line. */
export interface BatchTiming {
  queueMs: number;
  runMs: number;
  batchSize: number;
}

type Pending<I, O> = {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
  queuedAt: number;
  timed: ((t: BatchTiming) => void) | undefined;
};

export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private idle: (() => void)[] = [];
  /** Batches and items run so far: their ratio is the mean batch size (counters, so memory stays flat). */
  batches = 0;
  items = 0;
  /** Told of every batch once it has run (the app's metrics). */
  onBatch: ((run: BatchRun) => void) | undefined;

  constructor(
    /** Runs a batch; returns one result or Error per item, in order. */
    private readonly run: (items: I[]) => Promise<(O | Error)[]>,
    readonly options: BatcherOptions,
  ) {}

  get depth(): number {
    return this.queue.length + this.running;
  }

  /** `timed` hears, before the result arrives, how long the item waited and ran and with how many others. */
  submit(item: I, timed?: (t: BatchTiming) => void): Promise<O> {
    if (this.depth >= this.options.maxQueue) {
      return Promise.reject(
        new QueueFullError(`server busy: ${this.depth} requests queued (limit ${this.options.maxQueue})`),
      );
    }
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject, queuedAt: performance.now(), timed });
      this.schedule();
    });
  }

  /** Resolves once nothing is queued or running (graceful shutdown). */
  drain(): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    if (this.running > 0) return; // the model runs one batch at a time; the next starts when it ends
    if (this.queue.length >= this.options.maxBatch || this.options.maxWaitMs <= 0) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
    }
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue.splice(0, this.options.maxBatch);
    if (!batch.length) return;
    this.running = batch.length;
    this.batches++;
    this.items += batch.length;
    void this.execute(batch).finally(() => {
      this.running = 0;
      // Those that arrived while the model ran gather for another window rather than leaving at once: their
      // companions are still being read off the sockets (and verified) when a batch ends, so an immediate
      // flush ran batches of ~5 at concurrency 32. Under load a request waits up to two windows.
      if (this.queue.length) this.schedule();
      else for (const done of this.idle.splice(0)) done();
    });
  }

  private async execute(batch: Pending<I, O>[]): Promise<void> {
    const started = performance.now();
    let results: (O | Error)[];
    try {
      results = await this.run(batch.map((p) => p.item));
    } catch {
      // The batch as a whole failed: run each item alone so only the culprit fails.
      results = [];
      for (const p of batch) {
        try {
          const [r] = await this.run([p.item]);
          results.push(r as O | Error);
        } catch (err) {
          results.push(err instanceof Error ? err : new Error(String(err)));
        }
      }
    }
    const runMs = performance.now() - started;
    const queueMs = batch.map((p) => started - p.queuedAt);
    this.onBatch?.({ size: batch.length, queueMs, runMs });
    batch.forEach((p, i) => {
      p.timed?.({ queueMs: queueMs[i]!, runMs, batchSize: batch.length });
      const r = results[i];
      if (r instanceof Error) p.reject(r);
      else if (r === undefined) p.reject(new Error('batch returned fewer results than inputs'));
      else p.resolve(r);
    });
  }
}
