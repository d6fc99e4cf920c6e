// Per-kernel profile of one backbone training step: `npx tsx bench/profile-step.ts resnet18 64`
// (ENGINE=native|wasm, BATCH=50; THREADS=2 threaded wasm; TOP=30 slowest calls).
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../gpu-backend/src/engine';
import { enableWasmThreads } from '../gpu-backend/src/kernels/threaded-wasm';
import { buildBackbone } from '../gpu-backend/src/model/backbones';
import { trainableVariables } from '../gpu-backend/src/tfjs-internals';

const name = (process.argv[2] ?? 'resnet18') as 'resnet18';
const size = Number(process.argv[3] ?? 64);
if (Number(process.env.THREADS ?? 1) > 1)
  console.log('threads', await enableWasmThreads(Number(process.env.THREADS)));
await initEngine(process.env.ENGINE ?? 'wasm');
const m = buildBackbone({ name, inputShape: [size, size, 3], seed: 1 });
const x = tf.randomNormal([Number(process.env.BATCH ?? 32), size, size, 3], 0, 1, 'float32', 1);
const vars = trainableVariables(m);
const opt = tf.train.adam(1e-3);
const step = () => {
  const c = opt.minimize(
    () => (m.apply(x, { training: true }) as tf.Tensor).square().mean() as tf.Scalar,
    true,
    vars,
  );
  c!.dataSync();
  c!.dispose();
};
for (let i = 0; i < 6; i++) {
  const t0 = performance.now();
  step();
  console.log('step', (performance.now() - t0).toFixed(0));
}
const prof = await tf.profile(step);
const agg = new Map<string, [number, number]>();
for (const k of prof.kernels) {
  const a = agg.get(k.name) ?? [0, 0];
  a[0] += k.kernelTimeMs as number;
  a[1]++;
  agg.set(k.name, a);
}
const rows = [...agg.entries()].sort((a, b) => b[1][0] - a[1][0]);
let total = 0;
for (const [, v] of rows) total += v[0];
console.log('total kernel ms', total.toFixed(0));
for (const [k, v] of rows.slice(0, 25)) console.log(k.padEnd(30), v[0].toFixed(0).padStart(7), v[1]);
// Our kernels (conv gradients, MaxPoolGrad, Sum, Mean, flagged BatchMatMul) run ops inside: their
// totals include those nested calls. TOP=n lists the n slowest single calls with their input shapes.
const top = Number(process.env.TOP ?? 0);
if (top > 0) {
  const calls = [...prof.kernels].sort((a, b) => (b.kernelTimeMs as number) - (a.kernelTimeMs as number));
  for (const k of calls.slice(0, top)) {
    console.log(
      k.name.padEnd(30),
      (k.kernelTimeMs as number).toFixed(1).padStart(7),
      JSON.stringify(k.inputShapes),
    );
  }
}
