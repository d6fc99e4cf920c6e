// Image decoding off the training thread: worker threads read, decode and fit images while the model steps.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../util/ts-worker';
import { DataError } from './errors';
import type { Fitted, Rect, ResizeMode } from './image';

export interface DecodeJob {
  file: string;
  channels: 1 | 3;
  width: number;
  height: number;
  resize: ResizeMode;
  /** Fit this region (an annotated box) instead of the whole image. */
  box?: Rect | undefined;
}

export type DecodeRequest = DecodeJob & { id: number };
export type DecodeReply =
  | { id: number; ok: true; fitted: Fitted }
  /** `file` set: the image itself is at fault (a DataError, which --skip-corrupt may count and skip). */
  | { id: number; ok: false; file?: string; message: string };

/** Decode threads by default: one core is left to the training step (none on a single core). */
export function defaultDecodeWorkers(): number {
  return Math.min(2, Math.max(0, availableParallelism() - 1));
}

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  pending: Map<number, { resolve: (f: Fitted) => void; reject: (e: Error) => void }>;
}

export class DecodePool {
  private readonly slots: Slot[];
  private next = 0;

  constructor(readonly size: number) {
    this.slots = Array.from({ length: size }, () => {
      const worker = startTsWorker(new URL('./decode-worker.ts', import.meta.url));
      // A thread holds the process open while it starts and while it has work (see fit), never when idle:
      // a finished run exits, and a run awaiting its first image is not cut short.
      const pending: Slot['pending'] = new Map();
      const ready = new Promise<void>((resolve, reject) => {
        worker.once('error', reject);
        worker.on('message', (m: DecodeReply | { ready: true }) => {
          if ('ready' in m) {
            if (!pending.size) worker.unref();
            return resolve();
          }
          const p = pending.get(m.id);
          if (!p) return;
          pending.delete(m.id);
          if (!pending.size) worker.unref();
          if (m.ok) p.resolve(m.fitted);
          else p.reject(m.file !== undefined ? new DataError(m.file, m.message) : new Error(m.message));
        });
      });
      worker.on('error', (err) => {
        for (const p of pending.values()) p.reject(err);
        pending.clear();
      });
      return { worker, ready, pending };
    });
  }

  /** Reads, decodes and fits one image on the least busy thread. */
  async fit(job: DecodeJob): Promise<Fitted> {
    const slot = this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    await slot.ready;
    const id = this.next++;
    return new Promise<Fitted>((resolve, reject) => {
      if (!slot.pending.size) slot.worker.ref();
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ ...job, id } satisfies DecodeRequest);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

const pools = new Map<number, DecodePool>();

/** The process's pool of `size` threads, started on first use and shared by every split. */
export function decodePool(size: number): DecodePool {
  let pool = pools.get(size);
  if (!pool) {
    pool = new DecodePool(size);
    pools.set(size, pool);
  }
  return pool;
}
