// Data-parallel training on worker threads: each replica takes a slice of the batch, gradients are averaged.
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../../gpu-backend/src/util/ts-worker';
import type { Batch, BatchTensor, FromWorker, ReplicaSpec, ToWorker } from './protocol';

export type { Batch, BatchTensor, Replica, ReplicaFactory, ReplicaSpec } from './protocol';

/*
 * Why threads and not the threaded wasm build alone: XNNPACK's pool parallelises convolutions and
 * matMuls only, while a training step also spends a third of its time in element-wise and reduction
 * kernels that stay single-threaded. Splitting the batch keeps both cores busy for the whole step.
 *
 * Each worker owns a full replica and an identical optimizer. A step: every worker computes the
 * gradients of its slice and writes them to its own slot of one SharedArrayBuffer; then every worker
 * averages all slots (weighted by slice sizes) and applies its optimizer. Same inputs, same kernels,
 * same order: the replicas' weights stay bit-identical without being broadcast. Non-trainable state
 * (batch-norm moving statistics) is per replica, computed on its slice, as in PyTorch DataParallel.
 */

export interface DataParallelOptions extends ReplicaSpec {
  /** Number of replicas (worker threads); default 2. */
  replicas?: number;
}

/** Starts worker.ts in a thread. */
function startWorker(): Worker {
  return startTsWorker(new URL('./worker.ts', import.meta.url));
}

interface Pending {
  resolve: (m: FromWorker) => void;
  reject: (e: Error) => void;
}

class WorkerHandle {
  private pending: Pending | undefined;
  private failure: Error | undefined;
  constructor(readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (m.type === 'error') p.reject(new Error(`replica worker failed: ${m.message}`));
      else p.resolve(m);
    });
    const fail = (e: Error) => {
      this.failure = e;
      this.pending?.reject(e);
      this.pending = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`replica worker exited with code ${code}`));
    });
  }
  request(msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('replica worker busy'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(msg, transfer);
    });
  }
}

/** Row ranges [start, end) that split `rows` into `parts` near-equal slices (the first ones larger). */
export function splitRows(rows: number, parts: number): [number, number][] {
  const base = Math.floor(rows / parts);
  const extra = rows % parts;
  const out: [number, number][] = [];
  let start = 0;
  for (let k = 0; k < parts; k++) {
    const n = base + (k < extra ? 1 : 0);
    out.push([start, start + n]);
    start += n;
  }
  return out;
}

function sliceRows(t: BatchTensor, start: number, end: number): BatchTensor {
  const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { data: t.data.slice(start * row, end * row), shape: [end - start, ...t.shape.slice(1)] };
}

export class DataParallelTrainer {
  private constructor(
    private readonly handles: WorkerHandle[],
    /** Element count of each trainable variable, in the replica's order. */
    readonly sizes: number[],
    readonly shapes: number[][],
    private readonly shared: SharedArrayBuffer,
  ) {}

  /** Starts the workers, builds a replica in each and makes their weights identical to replica 0's. */
  static async create(options: DataParallelOptions): Promise<DataParallelTrainer> {
    const replicas = options.replicas ?? 2;
    if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be ≥ 1, got ${replicas}`);
    const spec: ReplicaSpec = {
      module: options.module,
      exportName: options.exportName,
      options: options.options,
      engine: options.engine,
    };
    const handles = Array.from({ length: replicas }, () => new WorkerHandle(startWorker()));
    try {
      const ready = await Promise.all(handles.map((h, index) => h.request({ type: 'init', spec, index })));
      const first = ready[0] as Extract<FromWorker, { type: 'ready' }>;
      const total = first.sizes.reduce((a, b) => a + b, 0);
      const shared = new SharedArrayBuffer(total * 4 * replicas);
      await Promise.all(handles.map((h) => h.request({ type: 'shared', buffer: shared, replicas })));
      const trainer = new DataParallelTrainer(handles, first.sizes, first.shapes, shared);
      if (replicas > 1) await trainer.setWeights(await trainer.getWeights());
      return trainer;
    } catch (err) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      throw err;
    }
  }

  get replicas(): number {
    return this.handles.length;
  }

  /** Computes every replica's gradients on its slice; returns the batch-mean loss. */
  private async computeGradients(batch: Batch): Promise<{ loss: number; weights: number[] }> {
    const entries = Object.entries(batch);
    if (entries.length === 0) throw new Error('empty batch');
    const rows = entries[0]![1].shape[0]!;
    for (const [name, t] of entries) {
      if (t.shape[0] !== rows)
        throw new Error(`batch input "${name}" has ${t.shape[0]} rows, expected ${rows}`);
    }
    const parts = splitRows(rows, this.handles.length);
    const weights = parts.map(([s, e]) => (e - s) / rows);
    const replies = await Promise.all(
      this.handles.map((h, k) => {
        const [s, e] = parts[k]!;
        if (e === s) return Promise.resolve({ type: 'loss', loss: 0 } as FromWorker);
        const shard: Batch = Object.fromEntries(entries.map(([n, t]) => [n, sliceRows(t, s, e)]));
        const transfer = Object.values(shard).map((t) => t.data.buffer as ArrayBuffer);
        return h.request({ type: 'grads', batch: shard }, transfer);
      }),
    );
    const empty = parts.map(([s, e]) => e === s);
    if (empty.some(Boolean)) {
      // An idle replica's slot must not contribute stale gradients.
      const total = this.sizes.reduce((a, b) => a + b, 0);
      empty.forEach((isEmpty, k) => {
        if (isEmpty) new Float32Array(this.shared, k * total * 4, total).fill(0);
      });
    }
    const loss = replies.reduce((acc, r, k) => acc + (r.type === 'loss' ? r.loss : 0) * weights[k]!, 0);
    return { loss, weights };
  }

  /**
   * One training step on the whole batch: gradients of the slices, averaged, one optimizer update in
   * every replica. Returns the batch-mean loss before the update.
   */
  async step(batch: Batch): Promise<number> {
    const { loss, weights } = await this.computeGradients(batch);
    await Promise.all(this.handles.map((h) => h.request({ type: 'apply', weights })));
    return loss;
  }

  /** The averaged full-batch gradients (one flat array per variable) without updating anything. */
  async gradients(batch: Batch): Promise<{ loss: number; grads: Float32Array[] }> {
    const { loss, weights } = await this.computeGradients(batch);
    const r = await this.handles[0]!.request({ type: 'average', weights });
    if (r.type !== 'weights') throw new Error(`unexpected reply ${r.type}`);
    const flat = r.values;
    let offset = 0;
    const grads = this.sizes.map((n) => {
      const g = flat.slice(offset, offset + n);
      offset += n;
      return g;
    });
    return { loss, grads };
  }

  /** Trainable weights of replica 0, flattened in variable order. */
  async getWeights(): Promise<Float32Array> {
    const r = await this.handles[0]!.request({ type: 'getWeights' });
    if (r.type !== 'weights') throw new Error(`unexpected reply ${r.type}`);
    return r.values;
  }

  /** Sets the trainable weights of every replica (flattened in variable order). */
  async setWeights(values: Float32Array): Promise<void> {
    await Promise.all(this.handles.map((h) => h.request({ type: 'setWeights', values })));
  }

  /** Disposes the replicas and stops the workers. */
  async dispose(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.request({ type: 'dispose' }).catch(() => undefined)));
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
