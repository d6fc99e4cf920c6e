// Phased training on real (small) data: no leaks, exact resume, projection onto real training patches.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../gpu-backend/src/data/dataset';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { initEngine } from '../../gpu-backend/src/engine';
import { loadModelDir } from '../../gpu-backend/src/io/model-files';
import { hardAssignment } from '../../gpu-backend/src/model/assignment';
import { TrainConfig } from '../../gpu-backend/src/train/config';
import { GroupedAdam } from '../../gpu-backend/src/train/optimizer';
import { TrainingStopped, train } from '../../gpu-backend/src/train/trainer';
import { TINY_CONFIG } from '../helpers/backend-process';

const tiny = TrainConfig.parse({ seed: 3, ...TINY_CONFIG });

/** Trains until the end of the first epoch, then stops as Ctrl-C would: one checkpoint on disk. */
async function trainOneEpochThenStop(dir: string): Promise<void> {
  const stop = new AbortController();
  await expect(
    train({
      dataset,
      config: tiny,
      outDir: dir,
      resume: false,
      command: 'test',
      signal: stop.signal,
      events: { onEpochEnd: () => stop.abort() },
    }),
  ).rejects.toBeInstanceOf(TrainingStopped);
}

let dataset: Dataset;
const tmp = (name: string) => mkdtemp(join(tmpdir(), `pp-${name}-`));

beforeAll(async () => {
  await initEngine('wasm');
  dataset = await openDataset('fashion-mnist:embedded');
});

describe('GroupedAdam', () => {
  it('steps like tf.train.adam to the bit, one variable at a time (peak memory of one, not of all)', async () => {
    const init = [0, 1, 2].map((k) => tf.tidy(() => tf.randomNormal([256, 256], 0, 1, 'float32', 10 + k)));
    const grads = [0, 1, 2].map((k) => tf.tidy(() => tf.randomNormal([256, 256], 0, 1, 'float32', 20 + k)));
    const ours = init.map((t) => tf.variable(t.clone()));
    const theirs = init.map((t) => tf.variable(t.clone()));
    const grouped = new GroupedAdam([{ name: 'all', variables: ours, lr: 0.01, weightDecay: 0 }]);
    const stock = tf.train.adam(0.01);
    const named = (vars: tf.Variable[]) => Object.fromEntries(vars.map((v, i) => [v.name, grads[i]!]));
    const peak = { ours: 0, theirs: 0 };
    for (let step = 0; step < 3; step++) {
      peak.ours = (await tf.profile(() => grouped.apply(named(ours), ['all']))).peakBytes;
      peak.theirs = (
        await tf.profile(() =>
          stock.applyGradients(named(theirs) as Parameters<tf.AdamOptimizer['applyGradients']>[0]),
        )
      ).peakBytes;
    }
    for (let i = 0; i < 3; i++) {
      expect(Array.from(ours[i]!.dataSync())).toEqual(Array.from(theirs[i]!.dataSync()));
    }
    // tfjs keeps every variable's temporaries to the end of the update: 3 variables' worth more here.
    const perVariable = 256 * 256 * 4;
    expect(peak.theirs - peak.ours).toBeGreaterThan(2 * 5 * perVariable);
    grouped.dispose();
    stock.dispose();
    tf.dispose([...init, ...grads, ...ours, ...theirs]);
  });

  it('matches Adam with L2 weight decay computed by hand, and resumes exactly from saved state', async () => {
    const lr = 0.1;
    const wd = 0.5;
    const w = tf.variable(tf.scalar(2));
    const grads = [3, -1];
    // Independent reference: torch.optim.Adam semantics, g ← g + wd·w, bias-corrected moments.
    let ref = 2;
    let m = 0;
    let v = 0;
    for (const [i, g0] of grads.entries()) {
      const g = g0 + wd * ref;
      m = 0.9 * m + 0.1 * g;
      v = 0.999 * v + 0.001 * g * g;
      ref -= (lr * (m / (1 - 0.9 ** (i + 1)))) / (Math.sqrt(v / (1 - 0.999 ** (i + 1))) + 1e-7);
    }
    const step = (opt: GroupedAdam, g: number) => {
      const gt = tf.scalar(g);
      opt.apply({ [w.name]: gt }, ['w']);
      gt.dispose();
    };
    const first = new GroupedAdam([{ name: 'w', variables: [w], lr, weightDecay: wd }]);
    step(first, grads[0]!);
    const saved = await first.encodeState();
    first.dispose();
    const second = new GroupedAdam([{ name: 'w', variables: [w], lr, weightDecay: wd }]);
    await second.decodeState(saved.data, saved.specs);
    step(second, grads[1]!);
    expect(w.dataSync()[0]).toBeCloseTo(ref, 5);
    second.dispose();
    w.dispose();
  });

  it('resumed after many steps, continues bit for bit like the optimizer that never stopped', async () => {
    const grad = (i: number) => Math.sin(i * 1.7) * 3;
    const run = async (stopAt?: number) => {
      // Small weights: their float32 steps are fine enough to show a last-bit change in Adam's correction.
      const init = tf.tensor1d([2e-3, -1e-3, 5e-4]);
      const w = tf.variable(init);
      init.dispose();
      const spec = () => [{ name: 'w', variables: [w], lr: 0.01, weightDecay: 0.1 }];
      let opt = new GroupedAdam(spec());
      for (let i = 0; i < 40; i++) {
        if (i === stopAt) {
          const saved = await opt.encodeState();
          opt.dispose();
          opt = new GroupedAdam(spec());
          await opt.decodeState(saved.data, saved.specs);
        }
        const g = tf.tensor1d([grad(i), grad(i + 1), grad(i + 2)]);
        opt.apply({ [w.name]: g }, ['w']);
        g.dispose();
      }
      const out = w.dataSync().slice();
      opt.dispose();
      w.dispose();
      return out;
    };
    const straight = await run();
    const before = tf.memory().numTensors; // after the first run: tfjs caches a few constants once
    // β₂ᵗ as a running float32 product and as pow(β₂, t + 1) differ in the last bits from t = 2 on.
    for (const stop of [5, 18, 30]) {
      expect(Buffer.from((await run(stop)).buffer)).toEqual(Buffer.from(straight.buffer));
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('training', () => {
  let straightDir: string;
  let straightVersion: string;

  it('runs warm-up, joint, projection and last layer without leaking a tensor', async () => {
    straightDir = await tmp('straight');
    const before = tf.memory().numTensors;
    const phases: string[] = [];
    const result = await train({
      dataset,
      config: tiny,
      outDir: straightDir,
      resume: false,
      command: 'test',
      events: { onEpochEnd: (r) => phases.push(r.phase) },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(phases).toEqual(['warmup', 'joint', 'lastLayer']);
    expect(result.history).toHaveLength(3);
    expect(result.final.accuracy).toBeGreaterThanOrEqual(0);
    const manifest = JSON.parse(await readFile(join(result.modelDir, 'manifest.json'), 'utf8'));
    straightVersion = manifest.version;
    expect(manifest.training.epochsCompleted).toBe(3);
    expect(manifest.prototypes.length + result.final.unusedPrototypes.length).toBe(12);
  });

  it('stopped after an epoch and resumed, ends with bit-identical weights', async () => {
    const dir = await tmp('resume');
    await trainOneEpochThenStop(dir);
    await expect(
      train({ dataset, config: tiny, outDir: dir, resume: false, command: 'test' }),
    ).rejects.toThrow(/already holds a training run/);
    const resumed = await train({ dataset, config: tiny, outDir: dir, resume: true, command: 'test' });
    expect(resumed.resumedFrom).toBe(1);
    const manifest = JSON.parse(await readFile(join(resumed.modelDir, 'manifest.json'), 'utf8'));
    expect(manifest.version).toBe(straightVersion);
  });

  it('refuses to resume from a corrupted or truncated checkpoint, naming the file', async () => {
    const dir = await tmp('corrupt');
    await trainOneEpochThenStop(dir);
    const weights = join(dir, 'checkpoints', 'epoch-0001', 'weights.bin');
    const bytes = await readFile(weights);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(weights, bytes);
    await expect(
      train({ dataset, config: tiny, outDir: dir, resume: true, command: 'test' }),
    ).rejects.toThrow(`${weights}: corrupt or truncated (checksum mismatch`);
    await writeFile(weights, bytes.subarray(0, 50));
    await expect(
      train({ dataset, config: tiny, outDir: dir, resume: true, command: 'test' }),
    ).rejects.toThrow(/corrupt or truncated \(checksum mismatch: 50 bytes/);
  });

  it('adds the feature-alignment term when asked: reported per epoch, no leak, a different model', async () => {
    const config = TrainConfig.parse({ ...tiny, loss: { ...tiny.loss, align: 1 } });
    const before = tf.memory().numTensors;
    const losses: Record<string, number>[] = [];
    const r = await train({
      dataset,
      config,
      outDir: await tmp('align'),
      resume: false,
      command: 'test',
      events: {
        onLog: (e) => {
          if (e.event === 'epoch') losses.push(e.losses as Record<string, number>);
        },
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    // Warm-up and joint epochs carry it (the 28 px small CNN's 14×14 first pool, pooled to its 7×7 grid).
    expect(losses[0]!.align).toBeGreaterThan(0);
    expect(losses[1]!.align).toBeGreaterThan(0);
    expect(losses[2]!.align).toBeUndefined();
    const version = JSON.parse(await readFile(join(r.modelDir, 'manifest.json'), 'utf8')).version;
    expect(version).not.toBe(straightVersion);
  });

  it('revives slots at the end of joint epochs when asked, seeding prototypes from its first seeding epoch', async () => {
    // 40 prototypes for 20 slots, so some are free to seed; an untrained model has slots below the gap.
    const config = TrainConfig.parse({
      ...tiny,
      model: { ...tiny.model, prototypes: 40 },
      epochs: { ...tiny.epochs, joint: 2 },
      revive: { minGap: 0.5, images: 64, seedImages: 2, seedFrom: 1 },
    });
    const before = tf.memory().numTensors;
    const logs: { phase: string; slotsRevived?: number; prototypesSeeded?: number }[] = [];
    await train({
      dataset,
      config,
      outDir: await tmp('revive'),
      resume: false,
      command: 'test',
      events: {
        onLog: (e) => {
          if (e.event === 'epoch') logs.push(e as (typeof logs)[number]);
        },
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(logs.map((l) => [l.phase, typeof l.slotsRevived])).toEqual([
      ['warmup', 'undefined'],
      ['joint', 'number'],
      ['joint', 'number'],
      ['lastLayer', 'undefined'],
    ]);
    // With seedFrom 0 this model seeds 9 prototypes in its first joint epoch; from 1 it waits a joint epoch.
    expect(logs[1]!.prototypesSeeded).toBe(0);
    expect(logs[2]!.prototypesSeeded).toBeGreaterThan(0);
    expect(logs[2]!.prototypesSeeded).toBeLessThanOrEqual(logs[2]!.slotsRevived!);
  });

  it('refuses the alignment term on a backbone layer that does not exist, naming the field', async () => {
    const config = TrainConfig.parse({
      ...tiny,
      model: { ...tiny.model, alignLayer: 'nope' },
      loss: { align: 1 },
    });
    const before = tf.memory().numTensors;
    await expect(
      train({ dataset, config, outDir: await tmp('align-bad'), resume: false, command: 'test' }),
    ).rejects.toThrow('model.alignLayer: the backbone has no layer "nope"');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('augments training batches when asked, reproducibly from the seed', async () => {
    const config = TrainConfig.parse({ ...tiny, augment: { flip: 1, rotate: 10 } });
    const versions: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await train({
        dataset,
        config,
        outDir: await tmp(`aug${i}`),
        resume: false,
        command: 'test',
      });
      versions.push(JSON.parse(await readFile(join(r.modelDir, 'manifest.json'), 'utf8')).version);
    }
    expect(versions[0]).toBe(versions[1]);
    expect(versions[0]).not.toBe(straightVersion);
  });

  it('projects every used prototype onto a latent patch of a training image whose class uses it', async () => {
    const { model, manifest } = await loadModelDir(join(straightDir, 'model'));
    const before = tf.memory().numTensors;
    const [gh, gw] = model.grid;
    const hard = hardAssignment(model.head.slotLogits);
    const protos = await model.head.prototypes.array();
    expect(manifest.prototypes.length).toBeGreaterThan(0);
    for (const p of manifest.prototypes) {
      expect(p.source).not.toBeNull();
      const src = p.source!;
      const index = Number(src.imageId.split('/')[1]);
      const batch = await dataset.train.load([index]);
      expect(batch.labels[0]).toBe(src.label);
      // A class that uses the prototype in the hard map is the source image's class.
      expect(p.usedBy.some((u) => u.classIndex === src.label && hard[u.classIndex]![u.slot] === p.id)).toBe(
        true,
      );
      const z = tf.tidy(() => model.features.predict(tf.tensor4d(batch.x, batch.shape)) as tf.Tensor4D);
      const patch = tf.tidy(() => tf.slice(z, [0, src.cell.h, src.cell.w, 0], [1, 1, 1, -1]).reshape([-1]));
      const values = Array.from(patch.dataSync());
      tf.dispose([z, patch]);
      values.forEach((v, j) => {
        expect(Math.abs(v - protos[p.id]![j]!)).toBeLessThan(1e-5);
      });
      expect(src.cell.h).toBeLessThan(gh);
      expect(src.cell.w).toBeLessThan(gw);
    }
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('micro-batches (gradient accumulation)', () => {
  /** Trains from the same start with `microBatch`; returns the train log's epoch losses and the last layer. */
  async function run(microBatch: number, epochs: { warmup: number; joint: number; lastLayer: number }) {
    const config = TrainConfig.parse({
      ...TINY_CONFIG,
      seed: 4,
      microBatch,
      epochs,
      epochSize: 64,
      batchSize: 32,
      limits: { train: 64, test: 32 },
    });
    const losses: number[] = [];
    const result = await train({
      dataset,
      config,
      outDir: await tmp(`micro-${microBatch}`),
      resume: false,
      command: 'test',
      events: { onEpochEnd: (r) => losses.push(r.trainLoss) },
    });
    const { model } = await loadModelDir(result.modelDir);
    const lastLayer = await model.head.lastLayer.data();
    model.dispose();
    return { losses, lastLayer };
  }

  it('sums chunk gradients into the batch mean: with batch norm frozen, chunks of 5 train as whole batches', async () => {
    // Last-layer fine-tuning runs batch norm on its running statistics, so chunking changes nothing but the
    // order of the sums: the same losses and weights to float rounding.
    const before = tf.memory().numTensors;
    const whole = await run(0, { warmup: 0, joint: 0, lastLayer: 2 });
    const chunked = await run(5, { warmup: 0, joint: 0, lastLayer: 2 });
    expect(chunked.losses).toHaveLength(2);
    for (const [i, l] of whole.losses.entries()) expect(chunked.losses[i]).toBeCloseTo(l, 5);
    let diff = 0;
    for (const [i, v] of whole.lastLayer.entries())
      diff = Math.max(diff, Math.abs(v - chunked.lastLayer[i]!));
    expect(diff).toBeLessThan(1e-6);
    // Not vacuous: fine-tuning moved the last layer off its initial 1/0 identity.
    expect(whole.lastLayer.some((v) => v !== 0 && v !== 1)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('trains the joint phase in chunks (batch norm on each chunk) to a finite loss, leaking nothing', async () => {
    const before = tf.memory().numTensors;
    const chunked = await run(8, { warmup: 0, joint: 1, lastLayer: 0 });
    expect(chunked.losses).toHaveLength(1);
    expect(Number.isFinite(chunked.losses[0])).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });
});
