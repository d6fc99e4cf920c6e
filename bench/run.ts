// `npm run bench`: every benchmark of the project, on this machine, with ratios to in-run baselines.

import { benchBackend } from './backend';
import { benchDataLoading } from './data-loading';
import { benchEdgeAll } from './edge';
import { benchInference } from './inference';
import { printTable } from './measure';
import { benchPretrained } from './pretrained';
import { benchTrainSpeed } from './train-speed';
import { benchVsPytorch } from './vs-pytorch';
import { benchWire } from './wire';

const only = process.argv[2];
const suites: Record<string, () => Promise<void>> = {
  wire: async () => printTable('tensor wire format, 32×64×64×3 float32', await benchWire()),
  train: async () => benchVsPytorch('train'),
  kernels: async () =>
    printTable(
      'backbone training images/s on wasm, batch 32 (ratio: speed-up over the first kernels)',
      await benchTrainSpeed(),
    ),
  data: async () =>
    printTable(
      'data loading overlapped with training (ratio: speed-up over decoding inline)',
      await benchDataLoading(),
    ),
  backend: async () =>
    printTable(
      'backend /invocations (median column = p50 latency; ratio = req/s over sequential at the same concurrency)',
      await benchBackend(process.env.BENCH_MODEL),
    ),
  edge: async () =>
    printTable(
      'edge p50 latency under wrangler dev (ratio: backend-direct p50 / this p50)',
      await benchEdgeAll(process.env.BENCH_MODEL),
    ),
  pretrained: async () =>
    printTable(
      'imported ResNet-50 at 224 px, CUB preset shape (ratios: serving vs backbone only; joint vs warm-up step)',
      await benchPretrained(),
    ),
  inference: async () => {
    benchVsPytorch('inference');
    printTable('inference latency (ratio: backbone-only time / full ProtoPool time)', await benchInference());
  },
};

for (const [name, run] of Object.entries(suites)) {
  if (only && only !== name) continue;
  await run();
}
