// One measured process: ProtoPool training steps or inference on one engine, printed as a RESULT line.
//
// Run by bench/vs-pytorch.ts once per engine and thread count, so that each figure (and above all each
// peak memory, which a process never gives back) belongs to one engine alone. By hand:
//   PROTOPOOL_THREADS=1 npx tsx bench/protopool-run.ts native resnet18-64 train 3
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../gpu-backend/src/data/dataset';
import { initEngine } from '../gpu-backend/src/engine';
import { HEAD_DEFAULTS } from '../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../gpu-backend/src/model/protopool';
import { TrainConfig } from '../gpu-backend/src/train/config';
import { seededArray } from '../test/helpers/random';
import { median, peakMb, syntheticSplit, trainStepTimes } from './synthetic-training';

export const BATCH = 50;
export const CASES = {
  'resnet18-64': {
    backbone: 'resnet18',
    inputShape: [64, 64, 3],
    prototypes: 40,
    slotsPerClass: 3,
    depth: 64,
  },
  'small-cnn-28': {
    backbone: 'small-cnn',
    inputShape: [28, 28, 1],
    prototypes: 40,
    slotsPerClass: 3,
    depth: 32,
  },
} as const;
export type CaseName = keyof typeof CASES;
const CLASSES = 10;

export interface RunResult {
  engine: string;
  /** Images per second from the median step (training) or batch (inference). */
  warmup?: number;
  joint?: number;
  inference?: number;
  /** Peak resident memory of the process (VmHWM), MB. */
  peakMb: number;
}

const rate = (ms: number) => Number((BATCH / (ms / 1000)).toFixed(1));

/** `steps` measured steps of warm-up and of joint training inside `train()` (the first of each dropped). */
async function trainSteps(
  name: CaseName,
  steps: number,
): Promise<{ warmup: number; joint: number; peakMb: number }> {
  const c = CASES[name];
  const dataset: Dataset = {
    spec: 'synthetic',
    description: `synthetic ${name}`,
    classes: Array.from({ length: CLASSES }, (_, i) => `class ${i}`),
    input: {
      height: c.inputShape[0],
      width: c.inputShape[1],
      channels: c.inputShape[2],
      resize: 'stretch',
      mean: Array(c.inputShape[2]).fill(0),
      std: Array(c.inputShape[2]).fill(1),
    },
    train: syntheticSplit(c.inputShape, CLASSES, BATCH * (steps + 1), 1),
    test: syntheticSplit(c.inputShape, CLASSES, BATCH, 99),
  };
  const config = TrainConfig.parse({
    model: {
      backbone: c.backbone,
      prototypes: c.prototypes,
      slotsPerClass: c.slotsPerClass,
      depth: c.depth,
      normalise: 'data',
    },
    batchSize: BATCH,
    epochSize: BATCH * (steps + 1),
    monitorSize: BATCH,
    augment: false,
    epochs: { warmup: 1, joint: 1, lastLayer: 0 },
  });
  const times = await trainStepTimes(dataset, config, steps + 1, 'bench');
  return { warmup: rate(median(times.warmup)), joint: rate(median(times.joint)), peakMb: times.peakMb };
}

/** Batches per second of the model as `protopool serve` runs it (frozen: batch norm folded). */
async function inferenceRate(name: CaseName, steps: number): Promise<number> {
  const c = CASES[name];
  const model = ProtoPoolModel.create({
    ...HEAD_DEFAULTS,
    classes: CLASSES,
    prototypes: c.prototypes,
    slotsPerClass: c.slotsPerClass,
    depth: c.depth,
    backbone: c.backbone,
    inputShape: [...c.inputShape],
    seed: 1,
  });
  await model.freeze();
  const x = tf.tensor4d(
    seededArray(BATCH * c.inputShape.reduce((a: number, b: number) => a * b, 1), 5, -2, 2),
    [BATCH, ...c.inputShape],
  );
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const out = tf.tidy(() => model.forward(x, { kind: 'inference' }, false).logits);
    out.dataSync();
    out.dispose();
    if (i > 0) times.push(performance.now() - t0);
  }
  x.dispose();
  model.dispose();
  return rate(median(times));
}

export async function runOnce(
  engine: string,
  name: CaseName,
  mode: 'train' | 'inference',
  steps: number,
): Promise<RunResult> {
  const info = await initEngine(engine);
  const figures =
    mode === 'train'
      ? await trainSteps(name, steps)
      : { inference: await inferenceRate(name, steps), peakMb: peakMb() };
  return { engine: info.description, ...figures };
}

if (process.argv[1]?.endsWith('protopool-run.ts')) {
  const [engine = 'auto', name = 'resnet18-64', mode = 'train', steps = '3'] = process.argv.slice(2);
  if (!(name in CASES)) throw new Error(`unknown case ${name}: ${Object.keys(CASES).join(', ')}`);
  const result = await runOnce(engine, name as CaseName, mode as 'train' | 'inference', Number(steps));
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}
