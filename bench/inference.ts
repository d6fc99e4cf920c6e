// Inference latency of ProtoPool at batch 1 and 32, against its bare backbone (baseline) in the same run.
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../gpu-backend/src/engine';
import { HEAD_DEFAULTS } from '../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../gpu-backend/src/model/protopool';
import { type BenchResult, measure } from './measure';

const CASES = [
  {
    backbone: 'small-cnn',
    inputShape: [28, 28, 1] as [number, number, number],
    classes: 10,
    m: 40,
    k: 3,
    d: 32,
  },
  {
    backbone: 'resnet18',
    inputShape: [64, 64, 3] as [number, number, number],
    classes: 10,
    m: 40,
    k: 3,
    d: 64,
  },
];

export async function benchInference(): Promise<BenchResult[]> {
  const engine = await initEngine();
  const rows: BenchResult[] = [];
  for (const c of CASES) {
    const model = ProtoPoolModel.create({
      ...HEAD_DEFAULTS,
      classes: c.classes,
      prototypes: c.m,
      slotsPerClass: c.k,
      depth: c.d,
      backbone: c.backbone,
      inputShape: c.inputShape,
      seed: 1,
    });
    for (const batch of [1, 32]) {
      const x = tf.randomNormal([batch, ...c.inputShape]) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const run = (f: () => tf.Tensor) => () => {
        const out = tf.tidy(f);
        out.dataSync();
        out.dispose();
      };
      const base = measure(
        `${c.backbone} backbone only, batch ${batch}`,
        run(() => model.features.predict(x) as tf.Tensor),
      );
      const full = measure(
        `${c.backbone} ProtoPool forward, batch ${batch}`,
        run(() => model.forward(x, { kind: 'inference' }, false).logits),
      );
      const after = tf.memory().numTensors;
      rows.push({ ...base, extra: { engine: engine.backend } });
      rows.push({
        ...full,
        ratio: base.medianMs / full.medianMs,
        extra: { perImageMs: (full.medianMs / batch).toFixed(2), tensorsBefore: before, tensorsAfter: after },
      });
      x.dispose();
    }
    model.dispose();
  }
  return rows;
}
