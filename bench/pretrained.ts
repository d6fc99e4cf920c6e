// The paper's CUB model on this machine: an imported ResNet-50 at 224 px, trained at batch 8 and served at 1 and 32.
//
// A synthetic ResNet-50 state dict is written in torch.save's zip format and goes through the same path as a
// user's checkpoint (`train --preset cub-resnet50-inat --weights`): reader, key mapping, the trainer with the
// preset's settings (M 202, K 10, D 256, 200 classes, mixup). Training is timed step by step inside the real
// trainer (warm-up with the backbone frozen is the baseline; joint trains the backbone too); serving is the
// ProtoPool forward against the bare backbone in the same run, as `bench inference` does.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../gpu-backend/src/data/dataset';
import { initEngine } from '../gpu-backend/src/engine';
import { HEAD_DEFAULTS } from '../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../gpu-backend/src/model/protopool';
import { IMAGENET, TrainConfig } from '../gpu-backend/src/train/config';
import { presetConfig } from '../gpu-backend/src/train/presets';
import { importResnet } from '../gpu-backend/src/weights/import-resnet';
import { readCheckpoint } from '../gpu-backend/src/weights/read-checkpoint';
import { torchvisionEntries, writeSyntheticCheckpoint } from '../test/helpers/state-dicts';
import { type BenchResult, measure } from './measure';
import { median, syntheticSplit, trainStepTimes } from './synthetic-training';

const SIDE = 224;
const CLASSES = 200;
const BATCH = 8;
// At 224 px a ResNet-50 training step fills wasm's 4 GB heap from 6 images: batch 8 runs as 2 chunks of 4.
const MICRO_BATCH = Number(process.env.PRETRAINED_MICRO_BATCH ?? 4);
const STEPS = Number(process.env.PRETRAINED_STEPS ?? 5);

function dataset(): Dataset {
  return {
    spec: 'synthetic',
    description: `synthetic ${SIDE} px, ${CLASSES} classes`,
    classes: Array.from({ length: CLASSES }, (_, i) => `class ${i}`),
    input: { height: SIDE, width: SIDE, channels: 3, resize: 'stretch', ...IMAGENET },
    train: syntheticSplit([SIDE, SIDE, 3], CLASSES, BATCH * (STEPS + 1), 1),
    test: syntheticSplit([SIDE, SIDE, 3], CLASSES, BATCH, 99),
  };
}

/** Step times of the warm-up and joint phases inside `train()`, stopped after the joint phase's steps. */
function trainSteps(weights: string): Promise<{ warmup: number[]; joint: number[] }> {
  const config = TrainConfig.parse({
    ...presetConfig('cub-resnet50-inat', CLASSES),
    model: { ...(presetConfig('cub-resnet50-inat', CLASSES).model as object), weights },
    batchSize: BATCH,
    microBatch: MICRO_BATCH,
    epochSize: BATCH * (STEPS + 1),
    monitorSize: BATCH,
    offlineCopies: 0,
    epochs: { warmup: 1, joint: 1, lastLayer: 0 },
  });
  return trainStepTimes(dataset(), config, STEPS, 'bench pretrained');
}

export async function benchPretrained(): Promise<BenchResult[]> {
  const engine = await initEngine();
  const dir = await mkdtemp(join(tmpdir(), 'pp-bench-pretrained-'));
  const rows: BenchResult[] = [];
  try {
    const weights = join(dir, 'resnet50.pth');
    await writeSyntheticCheckpoint(weights, torchvisionEntries('resnet50'));
    const t0 = performance.now();
    const dict = await readCheckpoint(weights);
    const { backbone } = await importResnet(dict, { arch: 'resnet50', inputShape: [SIDE, SIDE, 3], seed: 1 });
    await dict.close();
    const importMs = performance.now() - t0;
    rows.push({
      name: 'import ResNet-50 .pth (read + map + set)',
      medianMs: importMs,
      runs: 1,
      extra: { engine: engine.description },
    });

    const model = ProtoPoolModel.create(
      {
        ...HEAD_DEFAULTS,
        classes: CLASSES,
        prototypes: 202,
        slotsPerClass: 10,
        depth: 256,
        backbone: 'resnet50',
        inputShape: [SIDE, SIDE, 3],
        seed: 1,
      },
      backbone,
    );
    for (const batch of [1, 32]) {
      const x = tf.randomNormal([batch, SIDE, SIDE, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const run = (f: () => tf.Tensor) => () => {
        const out = tf.tidy(f);
        out.dataSync();
        out.dispose();
      };
      const runs = batch === 1 ? 7 : 3;
      const base = measure(
        `ResNet-50 224 px backbone only, batch ${batch}`,
        run(() => model.features.predict(x) as tf.Tensor),
        runs,
      );
      const full = measure(
        `ResNet-50 224 px ProtoPool forward, batch ${batch}`,
        run(() => model.forward(x, { kind: 'inference' }, false).logits),
        runs,
      );
      rows.push(base, {
        ...full,
        ratio: base.medianMs / full.medianMs,
        extra: {
          'ms/img': (full.medianMs / batch).toFixed(1),
          tensors: `${before}→${tf.memory().numTensors}`,
        },
      });
      x.dispose();
    }
    model.dispose();

    const steps = await trainSteps(weights);
    const warm = median(steps.warmup);
    const joint = median(steps.joint);
    const rate = (ms: number) => (BATCH / (ms / 1000)).toFixed(2);
    rows.push(
      {
        name: `train step b${BATCH} (chunks of ${MICRO_BATCH}), warm-up (backbone frozen)`,
        medianMs: warm,
        runs: steps.warmup.length,
        extra: { 'img/s': rate(warm) },
      },
      {
        name: `train step b${BATCH} (chunks of ${MICRO_BATCH}), joint (backbone trains)`,
        medianMs: joint,
        runs: steps.joint.length,
        ratio: warm / joint,
        extra: { 'img/s': rate(joint) },
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
