// The phased ProtoPool trainer: warm-up, joint, projection, last-layer fine-tuning; checkpoint every epoch.
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import { augmentBatch, offlineAugmented } from '../data/augment';
import { type Batch, type Dataset, limitSplit, type Split } from '../data/dataset';
import { readAhead } from '../data/streaming';
import { sha256, writeDirAtomic } from '../io/files';
import { loadLayersFromDir, serialiseModel } from '../io/model-files';
import { gumbelNoise, gumbelScale, hardAssignment, INFERENCE_SCALE } from '../model/assignment';
import {
  type BackboneName,
  buildBackbone,
  cutAtLayer,
  isResnet,
  RESNETS,
  type ResnetName,
  shallowLayer,
} from '../model/backbones';
import { alignmentLoss } from '../model/feature-alignment';
import { HEAD_DEFAULTS } from '../model/head';
import { clusterLoss, crossEntropy, lastLayerL1, orthogonalityLoss, separationLoss } from '../model/losses';
import { ProtoPoolModel } from '../model/protopool';
import { chunk } from '../util/arrays';
import { betaSample, deriveSeed, mulberry32, permutation } from '../util/random';
import { importResnet, type ResnetImport } from '../weights/import-resnet';
import { readCheckpoint } from '../weights/read-checkpoint';
import {
  type EpochRecord,
  latestCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  type TrainerState,
} from './checkpoint';
import { type Phase, phaseOf, type TrainConfig, totalEpochs } from './config';
import { evaluate } from './evaluate';
import { measureParts } from './interpretability';
import { buildManifest } from './manifest';
import { GroupedAdam } from './optimizer';
import { project } from './projection';
import { renderPrototypeImages } from './prototype-images';
import { reviveSlots } from './slot-revival';

export interface StepInfo {
  epoch: number;
  phase: Phase;
  step: number;
  steps: number;
  loss: number;
  accuracy: number;
  imagesPerSecond: number;
}

export interface TrainEvents {
  onEpochStart?(info: { epoch: number; phase: Phase; steps: number; epochs: number }): void;
  onStep?(info: StepInfo): void;
  onEpochEnd?(record: EpochRecord): void;
  /** Everything worth a line in the JSON-lines log. */
  onLog?(event: Record<string, unknown>): void;
}

export interface TrainOptions {
  dataset: Dataset;
  config: TrainConfig;
  outDir: string;
  resume: boolean;
  command: string;
  events?: TrainEvents;
  /** Stops training after the current step; the last completed epoch's checkpoint stays the resume point. */
  signal?: AbortSignal;
}

export class TrainingStopped extends Error {
  override name = 'TrainingStopped';
}

export interface TrainResult {
  modelDir: string;
  history: EpochRecord[];
  final: { accuracy: number; loss: number; prototypesUsed: number; unusedPrototypes: number[] };
  resumedFrom: number | null;
}

const GROUPS_BY_PHASE: Record<Phase, string[]> = {
  warmup: ['addOn', 'prototypes', 'slotLogits'],
  joint: ['backbone', 'addOn', 'prototypes', 'slotLogits'],
  lastLayer: ['lastLayer'],
};

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

/** Learning rates for an epoch: the joint phase decays by gamma every `every` joint epochs. */
function applySchedule(opt: GroupedAdam, config: TrainConfig, epoch: number, phase: Phase): void {
  const factor =
    phase === 'joint'
      ? config.lrStep.gamma ** Math.floor((epoch - config.epochs.warmup) / config.lrStep.every)
      : 1;
  for (const name of ['backbone', 'addOn', 'prototypes', 'slotLogits'] as const) {
    opt.setLearningRate(name, config.lr[name] * factor);
  }
}

interface StepResult {
  loss: number;
  correct: number;
  /** Unweighted loss terms, for the log. */
  parts: Record<string, number>;
}

/** What every step of a run shares. */
interface StepContext {
  model: ProtoPoolModel;
  opt: GroupedAdam;
  config: TrainConfig;
}

/** Where a step sits in the run: the phase, the epoch, and the step's place among the epoch's `steps`. */
interface StepAt {
  phase: Phase;
  epoch: number;
  step: number;
  steps: number;
}

/** The loss terms, in the order they are logged and summed (the order fixes the float sums). */
type LossTerm = 'ce' | 'l1' | 'clst' | 'sep' | 'ortho' | 'align';

async function trainStep(
  { model, opt, config }: StepContext,
  { x, shape, labels }: { x: Float32Array; shape: [number, number, number, number]; labels: Int32Array },
  { phase, epoch, step, steps }: StepAt,
): Promise<StepResult> {
  const groups = GROUPS_BY_PHASE[phase];
  const vars = groups.flatMap((g) => opt.group(g).variables);
  const seed = deriveSeed(config.seed, epoch, step);
  const w = config.loss;
  const c = model.config;
  const n = labels.length;
  const [, h, wd, ch] = shape;
  const perImage = h * wd * ch;
  // One Gumbel draw and one mixup λ per step, whatever the micro-batches.
  const noise = phase === 'lastLayer' ? null : gumbelNoise([c.classes, c.prototypes, c.slotsPerClass], seed);
  const lambda =
    config.mixup && phase !== 'lastLayer'
      ? betaSample(mulberry32(seed), config.mixup.alpha, config.mixup.alpha)
      : undefined;
  const micro = config.microBatch > 0 ? config.microBatch : n;
  let summed: tf.NamedTensorMap | undefined;
  const totals: tf.Tensor[] = [];
  let names: LossTerm[] = [];
  try {
    for (let start = 0, chunk = 0; start < n; start += micro, chunk++) {
      const end = Math.min(n, start + micro);
      // Each chunk's loss is weighted by its share, so the summed gradients are the batch mean's.
      const share = (end - start) / n;
      const chunkShape: [number, number, number, number] = [end - start, h, wd, ch];
      const result = outOfMemoryNamed(chunkShape, () =>
        tf.tidy(() => {
          let images = tf.tensor4d(x.subarray(start * perImage, end * perImage), chunkShape);
          const y = tf.tensor1d(labels.subarray(start, end), 'int32');
          let mix: { labelsB: tf.Tensor1D; lambda: number } | undefined;
          if (lambda !== undefined) {
            const perm = tf.tensor1d(permutation(end - start, (seed ^ 0x5bd1e995) + chunk), 'int32');
            images = tf.add(tf.mul(images, lambda), tf.mul(tf.gather(images, perm), 1 - lambda));
            mix = { labelsB: tf.gather(y, perm), lambda };
          }
          let correct: tf.Scalar | undefined;
          let parts: tf.Tensor1D | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const mode = noise
              ? // The scale anneals within an epoch too: with few, long epochs a per-epoch jump would freeze
                // the slot assignment before the slot logits have learnt anything.
                ({
                  kind: 'gumbel',
                  scale: gumbelScale(epoch + step / steps, config.gumbelTime, config.gumbelMax),
                  noise,
                } as const)
              : ({ kind: 'inference' } as const);
            // Checked to exist when training starts.
            const alignLayer = phase !== 'lastLayer' && w.align > 0 ? alignLayerOf(config) : undefined;
            const training = phase !== 'lastLayer';
            const aligned = alignLayer
              ? model.forwardWithShallow(images, mode, training, alignLayer)
              : undefined;
            const r = aligned ?? model.forward(images, mode, training);
            correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(r.logits, 1), y), 'float32'))) as tf.Scalar;
            // Each term unweighted (logged) and as it enters the loss. l1 is logged weighted, as it always was.
            const l1 = tf.mul(lastLayerL1(model.head.lastLayer, model.head.identity), w.l1) as tf.Scalar;
            const ce = crossEntropy(r.logits, y, mix);
            const loss: Partial<Record<LossTerm, { value: tf.Scalar; weighted: tf.Scalar }>> = {
              ce: { value: ce, weighted: ce },
              l1: { value: l1, weighted: l1 },
            };
            if (phase !== 'lastLayer') {
              // Under mixup the distance losses follow the first image's label, as the reference code does.
              const weighted = (value: tf.Scalar, weight: number) => ({
                value,
                weighted: tf.mul(value, weight) as tf.Scalar,
              });
              loss.clst = weighted(clusterLoss(r.minDistances, r.q, y, c.depth), w.clst);
              loss.sep = weighted(separationLoss(r.minDistances, r.q, y, c.depth), w.sep);
              loss.ortho = weighted(orthogonalityLoss(model.head.slotLogits), w.ortho);
              if (aligned) loss.align = weighted(alignmentLoss(aligned.shallow, aligned.z), w.align);
            }
            names = Object.keys(loss) as LossTerm[];
            parts = tf.keep(tf.mul(tf.stack(names.map((t) => loss[t]!.value)), share) as tf.Tensor1D);
            const total = tf.addN(names.map((t) => loss[t]!.weighted)) as tf.Scalar;
            return share === 1 ? total : (tf.mul(total, share) as tf.Scalar);
          }, vars);
          return { grads, totals: [value, correct!, parts!] };
        }),
      );
      if (!summed) summed = result.grads;
      else {
        for (const [name, g] of Object.entries(result.grads)) {
          const before = summed[name]!;
          summed[name] = tf.add(before, g);
          tf.dispose([before, g]);
        }
      }
      if (!totals.length) totals.push(...result.totals);
      else {
        for (const [i, t] of result.totals.entries()) {
          const before = totals[i]!;
          totals[i] = tf.add(before, t);
          tf.dispose([before, t]);
        }
      }
    }
    opt.apply(summed!, groups);
  } finally {
    tf.dispose([...Object.values(summed ?? {}), ...(noise ? [noise] : [])]);
  }
  const [lossT, correctT, partsT] = totals as [tf.Tensor, tf.Tensor, tf.Tensor];
  const [loss, correct, partValues] = await Promise.all([lossT.data(), correctT.data(), partsT.data()]);
  tf.dispose([lossT, correctT, partsT]);
  const parts = Object.fromEntries(Array.from(partValues, (v, i) => [names[i]!, v]));
  if (!Number.isFinite(loss[0]!))
    throw new Error(`training diverged: loss is ${loss[0]} at epoch ${epoch + 1}, step ${step + 1}`);
  return { loss: loss[0]!, correct: correct[0]!, parts };
}

/**
 * wasm's heap stops at 4 GB, and an allocation past it surfaces as a bare WebAssembly.RuntimeError ("memory
 * access out of bounds", "table index is out of bounds") from whichever kernel asked. Measured: ResNet-50 at
 * 224 px trains at batch 4 and fails at 6. Say so, and what to change.
 */
function outOfMemoryNamed<T>(shape: readonly number[], step: () => T): T {
  try {
    return step();
  } catch (err) {
    // WebAssembly.RuntimeError (this package's types do not declare the WebAssembly namespace).
    if (!(err instanceof Error) || err.name !== 'RuntimeError') throw err;
    const [b, h, w] = shape;
    throw new Error(
      `the wasm engine failed in a training step at batch ${b}, ${h}×${w} px (${err.message}): most likely its 4 GB heap is full. Set "microBatch": 4 in the config (gradients accumulate over chunks of 4; ResNet-50 at 224 px fits 4 on wasm), use a smaller --batch-size, or a native engine (--engine tensorflow-gpu)`,
    );
  }
}

/** The shallow layer for `loss.align`: the configured one, else the built-in backbone's default. */
function alignLayerOf(config: TrainConfig): string | undefined {
  return (
    config.model.alignLayer ?? (config.model.pretrained ? undefined : shallowLayer(config.model.backbone))
  );
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { dataset, outDir, events } = options;
  let config = options.config;
  let model: ProtoPoolModel;
  let opt: GroupedAdam;
  let state: Omit<TrainerState, 'optimizerSpecs'>;
  let resumedFrom: number | null = null;

  const checkpoint = await latestCheckpoint(outDir);
  if (checkpoint && !options.resume) {
    throw new Error(
      `${outDir} already holds a training run (${checkpoint}); pass --resume to continue it or choose another --out`,
    );
  }
  if (checkpoint) {
    const loaded = await loadCheckpoint(checkpoint);
    config = loaded.state.config;
    model = loaded.model;
    model.config.seed = config.seed;
    opt = makeOptimizer(model, config);
    await opt.decodeState(loaded.optimizerData, loaded.state.optimizerSpecs);
    const { optimizerSpecs: _, ...rest } = loaded.state;
    state = rest;
    resumedFrom = state.epochsCompleted;
    events?.onLog?.({ event: 'resume', checkpoint, epochsCompleted: state.epochsCompleted });
  } else {
    const built = await buildModel(config, dataset);
    model = built.model;
    opt = makeOptimizer(model, config);
    state = {
      config,
      dataSpec: dataset.spec,
      command: options.command,
      epochsCompleted: 0,
      projection: null,
      history: [],
    };
    events?.onLog?.({ event: 'start', dataset: dataset.description, config });
    if (built.imported) {
      const { ignored, ...rest } = built.imported;
      events?.onLog?.({ event: 'pretrained', ...rest, ignored: ignored.length });
    }
  }
  if (config.loss.align > 0) {
    const layer = alignLayerOf(config);
    const problem = !layer
      ? 'loss.align needs model.alignLayer: a pretrained backbone has no default shallow layer'
      : model.features.layers.some((l) => l.name === layer)
        ? undefined
        : `model.alignLayer: the backbone has no layer "${layer}"`;
    if (problem) {
      opt.dispose();
      model.dispose();
      throw new Error(problem);
    }
  }

  const trainSplit: Split = limitSplit(dataset.train, config.limits.train);
  // Epochs may read the offline-augmented copies; projection always uses the real images (real ids).
  const epochSplit: Split = config.offlineCopies
    ? offlineAugmented(trainSplit, dataset.input, config.seed, config.offlineCopies)
    : trainSplit;
  const augment = config.augment === false ? null : config.augment === true ? {} : config.augment;
  const testSplit: Split = limitSplit(dataset.test, config.limits.test);
  const monitorSplit: Split = limitSplit(testSplit, config.monitorSize);
  const epochs = totalEpochs(config);
  const [h, w, ch] = model.config.inputShape;
  // Evaluation and projection in batches no larger than training's: a larger batch of activations would
  // grow the wasm heap, which never shrinks, past what training itself needs (a 224 px ResNet-50 at 128
  // images holds 411 MB in its stem alone). Per-image results do not depend on the batch.
  const inferenceBatch = Math.min(128, config.batchSize);

  try {
    for (let epoch = state.epochsCompleted; epoch < epochs; epoch++) {
      const phase = phaseOf(config, epoch);
      if (phase === 'lastLayer' && !state.projection) {
        state.projection = await project(model, trainSplit, inferenceBatch);
        const after = await evaluate(model, monitorSplit, inferenceBatch);
        events?.onLog?.({
          event: 'projection',
          ...state.projection,
          prototypes: undefined,
          testAfter: after,
        });
      }
      applySchedule(opt, config, epoch, phase);
      const order = permutation(epochSplit.size, deriveSeed(config.seed, epoch, 0xda7a));
      const size = config.epochSize > 0 ? Math.min(config.epochSize, epochSplit.size) : epochSplit.size;
      const batches = chunk(order.slice(0, size), config.batchSize);
      events?.onEpochStart?.({ epoch, phase, steps: batches.length, epochs });
      // A run stopped inside this epoch resumes at its next batch with the epoch's running sums: the order,
      // augmentation and Gumbel noise derive from (seed, epoch, position), so the rest replays exactly.
      const resumed = state.inProgress?.epoch === epoch ? state.inProgress : undefined;
      state.inProgress = undefined;
      // Whether the slot assignment still learns: how many slots change prototype during the epoch.
      const slotsBefore = resumed?.slotsBefore ?? hardAssignment(model.head.slotLogits).flat();
      const started = performance.now() - (resumed?.seconds ?? 0) * 1000;
      let lossSum = resumed?.lossSum ?? 0;
      let correct = resumed?.correct ?? 0;
      let seen = resumed?.seen ?? 0;
      let step = resumed?.step ?? 0;
      const first = resumed?.position ?? 0;
      let position = first;
      const partSums: Record<string, number> = { ...resumed?.partSums };
      const transform =
        augment && phase !== 'lastLayer'
          ? (b: Batch, i: number) =>
              augmentBatch(b, dataset.input, deriveSeed(config.seed, epoch, first + i, 0xa06), augment)
          : undefined;
      for await (const batch of readAhead(epochSplit, batches.slice(first), { depth: 2, transform })) {
        position++;
        // Every image of this batch was skipped as corrupt (--skip-corrupt): nothing to learn from.
        if (batch.labels.length === 0) continue;
        const shape: [number, number, number, number] = [batch.labels.length, h, w, ch];
        const r = await trainStep(
          { model, opt, config },
          { x: batch.x, shape, labels: batch.labels },
          { phase, epoch, step, steps: batches.length },
        );
        lossSum += r.loss * batch.labels.length;
        correct += r.correct;
        seen += batch.labels.length;
        for (const [k, v] of Object.entries(r.parts))
          partSums[k] = (partSums[k] ?? 0) + v * batch.labels.length;
        step++;
        // A macrotask turn: with every image cached the loop only awaits settled promises, and a signal
        // handler (Ctrl-C, SIGTERM from SageMaker or spot capacity) would not run until the epoch ended.
        await setImmediate();
        if (options.signal?.aborted && position < batches.length) {
          const seconds = (performance.now() - started) / 1000;
          state.inProgress = {
            epoch,
            position,
            step,
            lossSum,
            correct,
            seen,
            partSums,
            slotsBefore,
            seconds,
          };
          const saved = await saveCheckpoint(outDir, model, opt, state, dataset);
          throw new TrainingStopped(
            `training stopped after step ${step} of ${batches.length} in epoch ${epoch + 1}; checkpointed in ${saved} (continue with --resume)`,
          );
        }
        const seconds = (performance.now() - started) / 1000;
        events?.onStep?.({
          epoch,
          phase,
          step,
          steps: batches.length,
          loss: lossSum / seen,
          accuracy: correct / seen,
          imagesPerSecond: seen / seconds,
        });
      }
      const seconds = (performance.now() - started) / 1000;
      const jointEpoch = epoch - config.epochs.warmup;
      // Before the learning-rate step, so prototypes and backbone still have time to serve the new slots.
      const revived =
        config.revive && phase === 'joint' && jointEpoch + 1 < config.lrStep.every
          ? await reviveSlots(
              model,
              trainSplit,
              permutation(trainSplit.size, deriveSeed(config.seed, epoch, 0x5e1)).slice(
                0,
                config.revive.images,
              ),
              {
                minGap: config.revive.minGap,
                seedImages: jointEpoch >= config.revive.seedFrom ? config.revive.seedImages : 0,
              },
            )
          : undefined;
      const test = await evaluate(model, monitorSplit, inferenceBatch);
      const record: EpochRecord = {
        epoch: epoch + 1,
        phase,
        trainLoss: lossSum / seen,
        trainAccuracy: correct / seen,
        testAccuracy: test.accuracy,
        testLoss: test.loss,
        prototypesUsed: test.prototypesUsed,
        gumbelScale:
          phase === 'lastLayer' ? INFERENCE_SCALE : gumbelScale(epoch, config.gumbelTime, config.gumbelMax),
        imagesPerSecond: seen / seconds,
        seconds,
      };
      state.history.push(record);
      state.epochsCompleted = epoch + 1;
      const saved = await saveCheckpoint(outDir, model, opt, state, dataset);
      events?.onEpochEnd?.(record);
      const losses = Object.fromEntries(Object.entries(partSums).map(([k, v]) => [k, v / seen]));
      const slotsMoved = hardAssignment(model.head.slotLogits)
        .flat()
        .filter((p, i) => p !== slotsBefore[i]).length;
      events?.onLog?.({
        event: 'epoch',
        ...record,
        slotsMoved,
        ...(revived
          ? { slotsRevived: revived.length, prototypesSeeded: revived.filter((m) => m.seeded).length }
          : {}),
        losses,
        checkpoint: saved,
      });
      if (options.signal?.aborted && epoch + 1 < epochs) {
        throw new TrainingStopped(`training stopped after epoch ${epoch + 1}; continue with --resume`);
      }
    }

    if (!state.projection) {
      state.projection = await project(model, trainSplit, inferenceBatch);
      events?.onLog?.({
        event: 'projection',
        unused: state.projection.unused,
        meanShift: state.projection.meanShift,
      });
    }
    const final = await evaluate(model, testSplit, inferenceBatch);
    const interpretability = testSplit.partNames?.length ? await measureParts(model, testSplit) : undefined;
    if (interpretability) events?.onLog?.({ event: 'interpretability', ...interpretability });
    const serialised = await serialiseModel(model);
    const pictures = await renderPrototypeImages(
      state.projection.prototypes,
      state.projection.sourceIndex ?? {},
      dataset,
      trainSplit,
    );
    for (const [path, bytes] of Object.entries(pictures)) {
      serialised.files[path] = bytes;
      serialised.checksums.push({ path, bytes: bytes.byteLength, sha256: sha256(bytes) });
    }
    const manifest = buildManifest({
      model,
      dataset,
      serialised,
      prototypes: state.projection.prototypes,
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
    });
    const modelDir = join(outDir, 'model');
    await writeDirAtomic(modelDir, {
      ...serialised.files,
      'manifest.json': JSON.stringify(manifest, null, 2),
    });
    events?.onLog?.({ event: 'done', modelDir, ...manifest.metrics, unused: state.projection.unused });
    return {
      modelDir,
      history: state.history,
      final: {
        accuracy: final.accuracy,
        loss: final.loss,
        prototypesUsed: final.prototypesUsed,
        unusedPrototypes: state.projection.unused,
      },
      resumedFrom,
    };
  } finally {
    opt.dispose();
    model.dispose();
  }
}
