// Training benchmarks' shared parts: seeded synthetic images, and step times measured inside `train()`.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Batch, Dataset, Split } from '../gpu-backend/src/data/dataset';
import type { TrainConfig } from '../gpu-backend/src/train/config';
import { TrainingStopped, train } from '../gpu-backend/src/train/trainer';
import { seededArray } from '../test/helpers/random';

/** Distinct images a synthetic split holds; image i is image i mod this. */
const POOL = 50;

/**
 * `size` seeded images of `shape` (values in [−2, 2], as if normalised) with labels cycling over `classes`.
 * They are made once (`POOL` of them, reused in turn), so loading a batch costs a copy: a step's time is the
 * model's, as in the PyTorch twin (scripts/torch/bench-protopool.py), which makes one batch up front.
 * Generating 50 seeded 64×64×3 images in JS took ~40 ms a batch, 12% of a warm-up step.
 */
export function syntheticSplit(shape: readonly number[], classes: number, size: number, seed: number): Split {
  const per = shape.reduce((a, b) => a * b, 1);
  const labels = Int32Array.from({ length: size }, (_, i) => (i * 37) % classes);
  const pool = Array.from({ length: Math.min(size, POOL) }, (_, i) => seededArray(per, seed + i, -2, 2));
  return {
    size,
    labels,
    id: (i) => `synthetic/${i}`,
    load: async (indices): Promise<Batch> => {
      const x = new Float32Array(indices.length * per);
      indices.forEach((i, b) => {
        x.set(pool[i % pool.length]!, b * per);
      });
      return {
        x,
        shape: [indices.length, ...shape] as Batch['shape'],
        labels: Int32Array.from(indices, (i) => labels[i]!),
        ids: indices.map((i) => `synthetic/${i}`),
      };
    },
  };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Peak resident memory of this process so far (VmHWM), MB. */
export function peakMb(): number {
  const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/**
 * Step times (ms) of the warm-up and joint phases of a real `train()` run, stopped once the joint phase has
 * taken `jointSteps` steps. The first step of each phase compiles its kernels and is left out. `peakMb` is the
 * process's peak memory over those steps.
 */
export async function trainStepTimes(
  dataset: Dataset,
  config: TrainConfig,
  jointSteps: number,
  command: string,
): Promise<{ warmup: number[]; joint: number[]; peakMb: number }> {
  const times = { warmup: [] as number[], joint: [] as number[], peakMb: 0 };
  const stop = new AbortController();
  const dir = await mkdtemp(join(tmpdir(), 'pp-bench-train-'));
  let last = 0;
  try {
    await train({
      dataset,
      config,
      outDir: dir,
      resume: false,
      command,
      signal: stop.signal,
      events: {
        onEpochStart: () => {
          last = performance.now();
        },
        onStep: (s) => {
          const now = performance.now();
          if (s.step > 1) times[s.phase as 'warmup' | 'joint'].push(now - last);
          last = now;
          if (s.phase === 'joint' && s.step === jointSteps) {
            // Read before stopping: the stop writes a checkpoint (weights and Adam's moments copied out of
            // the engine), a peak of its own that the PyTorch twin, which saves nothing, does not have.
            times.peakMb = peakMb();
            stop.abort();
          }
        },
      },
    });
  } catch (err) {
    if (!(err instanceof TrainingStopped)) throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return times;
}
