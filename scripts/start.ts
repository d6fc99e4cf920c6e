// `npm start`: the main job on the shipped model — for now, evaluate it on the embedded test set and show
// a few predictions with their prototype evidence. (The backend service and edge API join in later issues.)
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { openDataset } from '../gpu-backend/src/data/specs';
import { initEngine } from '../gpu-backend/src/engine';
import { loadModelDir } from '../gpu-backend/src/io/model-files';
import { evaluate } from '../gpu-backend/src/train/evaluate';

const SHIPPED = join(import.meta.dirname, '..', 'models', 'fashion-mnist');

function say(line: string): void {
  console.log(`[protopool] ${line}`);
}

async function main(): Promise<void> {
  say('ProtoPool at the edge: interpretable image classification by prototype parts.');
  if (!existsSync(join(SHIPPED, 'manifest.json'))) {
    say(`no shipped model at ${SHIPPED}; train one with:`);
    say(
      '  npx protopool train --data fashion-mnist --out models/run && npx protopool evaluate --model models/run --data fashion-mnist',
    );
    return;
  }
  const engine = await initEngine();
  say(`engine: ${engine.description}`);
  const { model, manifest } = await loadModelDir(SHIPPED);
  try {
    say(
      `model ${manifest.name} (version ${manifest.version.slice(0, 12)}), ${manifest.prototypes.length} prototypes in use`,
    );
    const data = await openDataset('fashion-mnist:embedded');
    const result = await evaluate(model, data.test);
    say(
      `test accuracy on ${data.description}: ${(100 * result.accuracy).toFixed(2)}% (${result.examples} images)`,
    );
    const batch = await data.test.load([0, 1, 2]);
    const out = tf.tidy(() => {
      const r = model.forward(tf.tensor4d(batch.x, batch.shape), { kind: 'inference' }, false);
      return [tf.softmax(r.logits), r.focal] as const;
    });
    const [probs, focal] = (await Promise.all(out.map((t) => t.array()))) as [number[][], number[][]];
    tf.dispose([...out]);
    const byId = new Map(manifest.prototypes.map((p) => [p.id, p]));
    const k = manifest.architecture.slotsPerClass;
    batch.ids.forEach((id, i) => {
      const p = probs[i]!;
      const best = p.indexOf(Math.max(...p));
      say(
        `${id} (true: ${manifest.classes[batch.labels[i]!]}) → ${manifest.classes[best]} (${(100 * p[best]!).toFixed(1)}%)`,
      );
      for (const proto of manifest.prototypes.filter((q) => q.usedBy.some((u) => u.classIndex === best))) {
        const slot = proto.usedBy.find((u) => u.classIndex === best)!.slot;
        const src = byId.get(proto.id)?.source;
        say(
          `    slot ${slot}: prototype ${proto.id}, focal similarity ${focal[i]![best * k + slot]!.toFixed(3)}` +
            (src ? `, learned from ${src.imageId} cell (${src.cell.h},${src.cell.w})` : ''),
        );
      }
    });
  } finally {
    model.dispose();
  }
}

try {
  await main();
} catch (err) {
  console.error(`[protopool] start failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
