import { openDataset } from '../gpu-backend/src/data/specs';
import { initEngine } from '../gpu-backend/src/engine';
import { TrainConfig } from '../gpu-backend/src/train/config';
import { train } from '../gpu-backend/src/train/trainer';

await initEngine('wasm');
const ds = await openDataset('fashion-mnist:embedded');
const base = {
  limits: { train: 2000, test: 500 },
  epochs: { warmup: 1, joint: 3, lastLayer: 1 },
  gumbelTime: 3,
};
const over = JSON.parse(process.argv[2] ?? '{}');
const merged = { ...base, ...over, model: { ...(over.model ?? {}) }, lr: { ...(over.lr ?? {}) } };
const config = TrainConfig.parse(merged);
const t0 = Date.now();
const r = await train({
  dataset: ds,
  config,
  outDir: `/tmp/trial-${Date.now()}`,
  resume: false,
  command: 'trial',
  events: {
    onLog: (e) => {
      if (e.event !== 'start')
        console.log(JSON.stringify({ ...e, prototypes: undefined, checkpoint: undefined }).slice(0, 500));
    },
  },
});
console.log(
  'FINAL',
  process.argv[2],
  JSON.stringify(r.final.accuracy),
  r.final.prototypesUsed,
  (Date.now() - t0) / 1000,
  's',
);
