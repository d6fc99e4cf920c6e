// Builds the shared ModelManifest for a model directory or checkpoint.
import type { ModelManifest, Prototype } from '@protopool/shared';
import type { Dataset } from '../data/dataset';
import { engineInfo } from '../engine';
import type { SerialisedModel } from '../io/model-files';
import type { ProtoPoolModel } from '../model/protopool';
import { slotUsers } from './projection';

export interface ManifestInput {
  model: ProtoPoolModel;
  dataset: Dataset;
  serialised: SerialisedModel;
  /** Extra files (already in `serialised.files` or not) whose checksums the manifest must carry. */
  extraChecksums?: SerialisedModel['checksums'];
  /** After projection: the projected prototypes (unused ones dropped); before: every used prototype, no source. */
  prototypes?: Prototype[];
  metrics: Record<string, number>;
  training: NonNullable<ModelManifest['training']>;
  name: string;
  /** The novelty calibration, once training is done (checkpoints have none). */
  novelty?: ModelManifest['novelty'];
}

export function buildManifest(i: ManifestInput): ModelManifest {
  const [gh, gw] = i.model.grid;
  const c = i.model.config;
  const prototypes =
    i.prototypes ??
    slotUsers(i.model)
      .map((usedBy, id) => ({ id, source: null, usedBy }))
      .filter((p) => p.usedBy.length > 0);
  return {
    format: 'protopool-manifest/1',
    version: i.serialised.version,
    name: i.name,
    createdAt: new Date().toISOString(),
    classes: i.dataset.classes,
    input: i.dataset.input,
    architecture: {
      backbone: c.backbone,
      prototypes: c.prototypes,
      slotsPerClass: c.slotsPerClass,
      depth: c.depth,
      featureGrid: { height: gh, width: gw },
      focal: c.focal,
    },
    prototypes,
    engine: engineInfo()?.description ?? 'unknown',
    metrics: i.metrics,
    training: i.training,
    files: [...i.serialised.checksums, ...(i.extraChecksums ?? [])],
    ...(i.novelty ? { novelty: i.novelty } : {}),
  };
}
