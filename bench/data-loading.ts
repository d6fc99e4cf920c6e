// Loading versus training: an epoch of JPEG/PNG images decoded on the training thread (inline) or by the
// decode pool, next to a real small-CNN training step; plus loading alone and stepping alone, for the ideal.
import * as tf from '@tensorflow/tfjs';
import { epochBatches } from '../gpu-backend/src/data/dataset';
import { openDataset } from '../gpu-backend/src/data/specs';
import { readAhead } from '../gpu-backend/src/data/streaming';
import { initEngine } from '../gpu-backend/src/engine';
import type { BenchResult } from './measure';
import { backboneReplica } from './parallel/examples';

const SIZE = 96;
const BATCH = 16;
// 120 images of 96 px, never cached (cache=0), so every batch is read and decoded again.
const spec = (workers: number) =>
  `parts:11?size=${SIZE}&classes=4&train=30&test=2&cache=0&decode-workers=${workers}`;

export async function benchDataLoading(): Promise<BenchResult[]> {
  await initEngine('wasm');
  const replica = backboneReplica({ name: 'small-cnn', inputShape: [SIZE, SIZE, 3], seed: 1 });
  const step = (x: Float32Array, n: number) => {
    tf.tidy(() => {
      const t = tf.tensor4d(x, [n, SIZE, SIZE, 3]);
      replica.optimizer!.minimize(() => replica.loss!({ x: t }), true, replica.variables)!.dataSync();
    });
  };
  const time = async (f: () => Promise<void>) => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  const inline = await openDataset(spec(0));
  const pooled = await openDataset(spec(1));
  const batches = epochBatches(inline.train.size, BATCH);
  const first = await inline.train.load(batches[0]!);
  step(first.x, batches[0]!.length); // warm-up: optimizer slots, JIT
  const stepOnly = await time(async () => {
    for (const b of batches) step(first.x.subarray(0, b.length * SIZE * SIZE * 3), b.length);
  });
  const loadOnly = await time(async () => {
    for await (const _ of readAhead(inline.train, batches)) {
      // loading alone
    }
  });
  const epoch = async (split: typeof inline.train) =>
    time(async () => {
      for await (const b of readAhead(split, batches)) step(b.x, b.labels.length);
    });
  const before = tf.memory().numTensors;
  // Alternate, twice each, so load from other processes hits both alike; keep the faster of each.
  const inlineTimes = [await epoch(inline.train), await epoch(pooled.train), await epoch(inline.train)];
  const pooledTimes = [inlineTimes.splice(1, 1)[0]!, await epoch(pooled.train)];
  const after = tf.memory().numTensors;
  replica.dispose?.();
  const n = inline.train.size;
  const row = (name: string, ms: number, baseline?: number): BenchResult => ({
    name,
    medianMs: ms,
    runs: 1,
    ...(baseline ? { ratio: baseline / ms } : {}),
    extra: { 'img/s': ((1000 * n) / ms).toFixed(1) },
  });
  const inlineBest = Math.min(...inlineTimes);
  return [
    row(`training step alone (${n} images, ${SIZE} px)`, stepOnly),
    row('loading alone (read + decode + fit, inline)', loadOnly),
    row('epoch, decoding inline (baseline)', inlineBest),
    {
      ...row('epoch, decoding in 1 pool thread', Math.min(...pooledTimes), inlineBest),
      extra: {
        'img/s': ((1000 * n) / Math.min(...pooledTimes)).toFixed(1),
        'ideal (max of the two alone)': `${Math.max(stepOnly, loadOnly).toFixed(0)} ms`,
        tensors: `${before}→${after}`,
      },
    },
  ];
}
