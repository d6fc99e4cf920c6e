// Exporting the trained model: final metrics, prototype pictures and manifest, written atomically to <out>/model.
import { join } from 'node:path';
import { calibrateOnSplit } from '../explain/novelty';
import { sha256, writeDirAtomic } from '../io/files';
import { serialiseModel } from '../io/model-files';
import { evaluate } from './evaluate';
import { measureParts } from './interpretability';
import { buildManifest } from './manifest';
import type { RunContext } from './open-run';
import type { ProjectionResult } from './projection';
import { renderPrototypeImages } from './prototype-images';
import type { TrainResult } from './trainer';

/** The whole test split's accuracy, and on data with part annotations, how interpretable the prototypes are. */
async function finalMetrics({ model, splits, inferenceBatch, events }: RunContext) {
  const final = await evaluate(model, splits.test, inferenceBatch);
  const interpretability = splits.test.partNames?.length ? await measureParts(model, splits.test) : undefined;
  if (interpretability) events?.onLog?.({ event: 'interpretability', ...interpretability });
  return { final, interpretability };
}

/** Writes the model directory whole or not at all: the weights, each projected prototype's picture, the manifest. */
export async function exportModel(run: RunContext, projection: ProjectionResult): Promise<TrainResult> {
  const { model, dataset, state, config } = run;
  const { final, interpretability } = await finalMetrics(run);
  const used = projection.prototypes.map((p) => p.id);
  const novelty = await calibrateOnSplit(model, run.splits.train, used, run.inferenceBatch);
  const serialised = await serialiseModel(model);
  const pictures = await renderPrototypeImages(
    projection.prototypes,
    projection.sourceIndex ?? {},
    dataset,
    run.splits.train,
  );
  for (const [path, bytes] of Object.entries(pictures)) {
    serialised.files[path] = bytes;
    serialised.checksums.push({ path, bytes: bytes.byteLength, sha256: sha256(bytes) });
  }
  const manifest = buildManifest({
    model,
    dataset,
    serialised,
    prototypes: projection.prototypes,
    metrics: {
      accuracy: final.accuracy,
      loss: final.loss,
      prototypesUsed: final.prototypesUsed,
      testExamples: final.examples,
      ...(interpretability
        ? {
            consistency: interpretability.consistency,
            consistencyShared: interpretability.consistencyShared,
            stability: interpretability.stability,
            purity: interpretability.purity,
            localSize: interpretability.localSize,
          }
        : {}),
    },
    training: {
      command: state.command,
      dataset: dataset.description,
      epochsCompleted: state.epochsCompleted,
      phase: 'done',
      config: config as unknown as Record<string, unknown>,
    },
    name: `protopool-${model.config.backbone}-${dataset.spec.split(/[:?]/)[0]}`,
    novelty,
  });
  const modelDir = join(run.outDir, 'model');
  await writeDirAtomic(modelDir, {
    ...serialised.files,
    'manifest.json': JSON.stringify(manifest, null, 2),
  });
  run.events?.onLog?.({ event: 'done', modelDir, ...manifest.metrics, unused: projection.unused });
  return {
    modelDir,
    history: state.history,
    final: {
      accuracy: final.accuracy,
      loss: final.loss,
      prototypesUsed: final.prototypesUsed,
      unusedPrototypes: projection.unused,
    },
    resumedFrom: run.resumedFrom,
  };
}
