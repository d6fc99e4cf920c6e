// Opening a run: a fresh model and optimizer, or both as the last checkpoint left them, and the splits it reads.
import { type AugmentOptions, offlineAugmented } from '../data/augment';
import { type Dataset, limitSplit, type Split } from '../data/dataset';
import { loadLayersFromDir } from '../io/model-files';
import {
  type BackboneName,
  buildBackbone,
  cutAtLayer,
  isResnet,
  RESNETS,
  type ResnetName,
} from '../model/backbones';
import { HEAD_DEFAULTS } from '../model/head';
import { ProtoPoolModel } from '../model/protopool';
import { importResnet, type ResnetImport } from '../weights/import-resnet';
import { readCheckpoint } from '../weights/read-checkpoint';
import { latestCheckpoint, loadCheckpoint, type TrainerState } from './checkpoint';
import { type TrainConfig, totalEpochs } from './config';
import { GroupedAdam } from './optimizer';
import { alignLayerOf } from './train-step';
import type { TrainEvents, TrainOptions } from './trainer';

/**
 * Evaluation and projection in batches no larger than training's, and at most this: a larger batch of
 * activations would grow the wasm heap, which never shrinks, past what training itself needs (a 224 px
 * ResNet-50 at 128 images holds 411 MB in its stem alone). Per-image results do not depend on the batch.
 */
const MAX_INFERENCE_BATCH = 128;

/** What a checkpoint saves of a run besides the weights and the optimizer's moments. */
export type RunState = Omit<TrainerState, 'optimizerSpecs'>;

export interface RunSplits {
  /** The real training images: projection, revival and the prototype pictures read these (real ids). */
  train: Split;
  /** What epochs draw their batches from: `train`, or its offline-augmented copies. */
  epoch: Split;
  /** The final evaluation's. */
  test: Split;
  /** The part of `test` evaluated after every epoch. */
  monitor: Split;
}

/** What every part of a run shares, from opening it to exporting the model. */
export interface RunContext {
  dataset: Dataset;
  /** On resume the checkpoint's: a run keeps the configuration it started with. */
  config: TrainConfig;
  outDir: string;
  events?: TrainEvents | undefined;
  signal?: AbortSignal | undefined;
  model: ProtoPoolModel;
  opt: GroupedAdam;
  /** Updated as epochs complete; saved with every checkpoint. */
  state: RunState;
  /** The epochs a resumed run had completed; null for a fresh run. */
  resumedFrom: number | null;
  splits: RunSplits;
  /** On-line augmentation of the warm-up and joint epochs' batches; null when off. */
  augment: Partial<AugmentOptions> | null;
  /** Warm-up, joint and last-layer epochs together. */
  epochs: number;
  inferenceBatch: number;
}

type Opened = Pick<RunContext, 'config' | 'model' | 'opt' | 'state' | 'resumedFrom'>;

/** Continues the run in `outDir` from its last checkpoint when asked to, else starts one; never overwrites a run. */
export async function openRun(options: TrainOptions): Promise<RunContext> {
  const { dataset, outDir, events } = options;
  const checkpoint = await latestCheckpoint(outDir);
  if (checkpoint && !options.resume) {
    throw new Error(
      `${outDir} already holds a training run (${checkpoint}); pass --resume to continue it or choose another --out`,
    );
  }
  const opened = checkpoint ? await resumeRun(checkpoint, events) : await startRun(options);
  const { config, model, opt } = opened;
  const problem = alignmentProblem(config, model);
  if (problem) {
    opt.dispose();
    model.dispose();
    throw new Error(problem);
  }
  const train = limitSplit(dataset.train, config.limits.train);
  const epoch = config.offlineCopies
    ? offlineAugmented(train, dataset.input, config.seed, config.offlineCopies)
    : train;
  const augment = config.augment === false ? null : config.augment === true ? {} : config.augment;
  const test = limitSplit(dataset.test, config.limits.test);
  const monitor = limitSplit(test, config.monitorSize);
  return {
    dataset,
    outDir,
    events,
    signal: options.signal,
    ...opened,
    splits: { train, epoch, test, monitor },
    augment,
    epochs: totalEpochs(config),
    inferenceBatch: Math.min(MAX_INFERENCE_BATCH, config.batchSize),
  };
}

async function resumeRun(checkpoint: string, events: TrainEvents | undefined): Promise<Opened> {
  const loaded = await loadCheckpoint(checkpoint);
  const config = loaded.state.config;
  const model = loaded.model;
  // Model files carry no seed (they load with 0); the run's is in its configuration.
  model.config.seed = config.seed;
  const opt = makeOptimizer(model, config);
  await opt.decodeState(loaded.optimizerData, loaded.state.optimizerSpecs);
  const { optimizerSpecs: _, ...state } = loaded.state;
  events?.onLog?.({ event: 'resume', checkpoint, epochsCompleted: state.epochsCompleted });
  return { config, model, opt, state, resumedFrom: state.epochsCompleted };
}

async function startRun({ dataset, config, command, events }: TrainOptions): Promise<Opened> {
  const built = await buildModel(config, dataset);
  const opt = makeOptimizer(built.model, config);
  const state: RunState = {
    config,
    dataSpec: dataset.spec,
    command,
    epochsCompleted: 0,
    projection: null,
    history: [],
  };
  events?.onLog?.({ event: 'start', dataset: dataset.description, config });
  if (built.imported) {
    const { ignored, ...rest } = built.imported;
    events?.onLog?.({ event: 'pretrained', ...rest, ignored: ignored.length });
  }
  return { config, model: built.model, opt, state, resumedFrom: null };
}

/** Checked before the first step, so a misnamed `loss.align` layer costs no training. */
function alignmentProblem(config: TrainConfig, model: ProtoPoolModel): string | undefined {
  if (config.loss.align <= 0) return undefined;
  const layer = alignLayerOf(config);
  if (!layer) return 'loss.align needs model.alignLayer: a pretrained backbone has no default shallow layer';
  return model.features.layers.some((l) => l.name === layer)
    ? undefined
    : `model.alignLayer: the backbone has no layer "${layer}"`;
}

/** A fresh model: random weights, a TF.js layers model cut at a layer, or a PyTorch ResNet checkpoint. */
async function buildModel(
  config: TrainConfig,
  dataset: Dataset,
): Promise<{ model: ProtoPoolModel; imported?: ResnetImport & { file: string; format: string } }> {
  const inputShape: [number, number, number] = [
    dataset.input.height,
    dataset.input.width,
    dataset.input.channels,
  ];
  const m = config.model;
  const modelConfig = {
    ...HEAD_DEFAULTS,
    classes: dataset.classes.length,
    prototypes: m.prototypes,
    slotsPerClass: m.slotsPerClass,
    depth: m.depth,
    focal: m.focal,
    backbone: m.pretrained
      ? `pretrained:${m.pretrained.layer}`
      : m.stages < 4
        ? `${m.backbone}/layer${m.stages}`
        : m.backbone,
    inputShape,
    seed: config.seed,
  };
  if (m.pretrained) {
    const base = await loadLayersFromDir(m.pretrained.path);
    return { model: ProtoPoolModel.create(modelConfig, cutAtLayer(base, m.pretrained.layer)) };
  }
  if (!isResnet(m.backbone) && (m.weights || m.stages < 4)) {
    throw new Error(
      `model.${m.weights ? 'weights' : 'stages'}: only a ResNet backbone (${RESNETS.join(', ')}) ${m.weights ? 'loads a PyTorch checkpoint' : 'has stages'}, not "${m.backbone}"`,
    );
  }
  if (m.weights) {
    const dict = await readCheckpoint(m.weights);
    try {
      const opts = { arch: m.backbone as ResnetName, inputShape, stages: m.stages, seed: config.seed };
      const { backbone, report } = await importResnet(dict, opts);
      return {
        model: ProtoPoolModel.create(modelConfig, backbone),
        imported: { ...report, file: dict.file, format: dict.format },
      };
    } finally {
      await dict.close();
    }
  }
  const name = m.backbone as BackboneName;
  const trunk = buildBackbone({ name, inputShape, seed: config.seed, stages: m.stages });
  return { model: ProtoPoolModel.create(modelConfig, trunk) };
}

function makeOptimizer(model: ProtoPoolModel, config: TrainConfig): GroupedAdam {
  const { lr, weightDecay } = config;
  return new GroupedAdam([
    {
      name: 'backbone',
      variables: model.backboneVariables,
      lr: lr.backbone,
      weightDecay: weightDecay.backbone,
    },
    { name: 'addOn', variables: model.addOnVariables, lr: lr.addOn, weightDecay: weightDecay.addOn },
    { name: 'prototypes', variables: [model.head.prototypes], lr: lr.prototypes, weightDecay: 0 },
    { name: 'slotLogits', variables: [model.head.slotLogits], lr: lr.slotLogits, weightDecay: 0 },
    { name: 'lastLayer', variables: [model.head.lastLayer], lr: lr.lastLayer, weightDecay: 0 },
  ]);
}
