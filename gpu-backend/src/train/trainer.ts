// The phased ProtoPool trainer: warm-up, joint, projection, last-layer fine-tuning; checkpoint every epoch.
import { setImmediate } from 'node:timers/promises';
import { augmentBatch } from '../data/augment';
import type { Batch, Dataset } from '../data/dataset';
import { readAhead } from '../data/streaming';
import { gumbelScale, hardAssignment, INFERENCE_SCALE } from '../model/assignment';
import { chunk } from '../util/arrays';
import { deriveSeed, permutation } from '../util/random';
import { type EpochInProgress, type EpochRecord, saveCheckpoint } from './checkpoint';
import { type Phase, phaseOf, type TrainConfig } from './config';
import { evaluate } from './evaluate';
import { exportModel } from './export-model';
import { openRun, type RunContext } from './open-run';
import type { GroupedAdam } from './optimizer';
import { type ProjectionResult, project } from './projection';
import { reviveSlots, type SlotMove } from './slot-revival';
import { trainStep } from './train-step';

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

/** Salts that give each of an epoch's random draws its own stream; changing one changes every run. */
const STREAM = { order: 0xda7a, augment: 0xa06, revival: 0x5e1 } as const;

/** Batches loading while a step runs: enough to hide decoding, few enough to bound memory. */
const READ_AHEAD = 2;

/**
 * Warm-up, joint and last-layer epochs from wherever the run stands, projection as the last layer's phase
 * begins, then the model. A signal stops it at a step or epoch boundary, checkpointed for --resume.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const run = await openRun(options);
  try {
    for (let epoch = run.state.epochsCompleted; epoch < run.epochs; epoch++) {
      const phase = phaseOf(run.config, epoch);
      if (phase === 'lastLayer' && !run.state.projection) await projectBeforeLastLayer(run);
      const tally = await runEpoch(run, epoch, phase);
      const revived = phase === 'joint' ? await afterJointEpoch(run, epoch) : undefined;
      await finishEpoch(run, epoch, phase, tally, revived);
      if (run.signal?.aborted && epoch + 1 < run.epochs) {
        throw new TrainingStopped(`training stopped after epoch ${epoch + 1}; continue with --resume`);
      }
    }
    // A run without last-layer epochs still ships projected prototypes.
    const projection = run.state.projection ?? (await projectAtEnd(run));
    return await exportModel(run, projection);
  } finally {
    run.opt.dispose();
    run.model.dispose();
  }
}

/**
 * Projection ("push") as the last-layer phase begins, so that phase fits the prototypes explanations will
 * show; the monitor accuracy after it tells what projecting cost.
 */
async function projectBeforeLastLayer(run: RunContext): Promise<void> {
  const projection = await project(run.model, run.splits.train, run.inferenceBatch);
  run.state.projection = projection;
  const after = await evaluate(run.model, run.splits.monitor, run.inferenceBatch);
  run.events?.onLog?.({ event: 'projection', ...projection, prototypes: undefined, testAfter: after });
}

/**
 * An epoch's running sums, from its first step or from where a stopped run left them: what a checkpoint
 * saves of an epoch in progress, with the wall clock as when the epoch began (performance.now(), moved
 * back by the time a stopped run had spent in it) instead of seconds spent.
 */
type EpochTally = Omit<EpochInProgress, 'epoch' | 'position' | 'seconds'> & { started: number };

const secondsSince = (started: number) => (performance.now() - started) / 1000;

/** One pass over the epoch's batches, one optimizer step each; the tally and its duration, revival excluded. */
async function runEpoch(
  run: RunContext,
  epoch: number,
  phase: Phase,
): Promise<EpochTally & { seconds: number }> {
  const { config, state, dataset, augment, events } = run;
  applySchedule(run.opt, config, epoch, phase);
  const order = permutation(run.splits.epoch.size, deriveSeed(config.seed, epoch, STREAM.order));
  const size =
    config.epochSize > 0 ? Math.min(config.epochSize, run.splits.epoch.size) : run.splits.epoch.size;
  const batches = chunk(order.slice(0, size), config.batchSize);
  const steps = batches.length;
  events?.onEpochStart?.({ epoch, phase, steps, epochs: run.epochs });
  // A run stopped inside this epoch resumes at its next batch with the epoch's running sums: the order,
  // augmentation and Gumbel noise derive from (seed, epoch, position), so the rest replays exactly.
  const resumed = state.inProgress?.epoch === epoch ? state.inProgress : undefined;
  state.inProgress = undefined;
  const tally: EpochTally = {
    step: resumed?.step ?? 0,
    lossSum: resumed?.lossSum ?? 0,
    correct: resumed?.correct ?? 0,
    seen: resumed?.seen ?? 0,
    partSums: { ...resumed?.partSums },
    slotsBefore: resumed?.slotsBefore ?? hardAssignment(run.model.head.slotLogits).flat(),
    started: performance.now() - (resumed?.seconds ?? 0) * 1000,
  };
  const first = resumed?.position ?? 0;
  let position = first;
  const transform =
    augment && phase !== 'lastLayer'
      ? (b: Batch, i: number) =>
          augmentBatch(b, dataset.input, deriveSeed(config.seed, epoch, first + i, STREAM.augment), augment)
      : undefined;
  const [h, w, ch] = run.model.config.inputShape;
  const batchesLeft = batches.slice(first);
  for await (const batch of readAhead(run.splits.epoch, batchesLeft, { depth: READ_AHEAD, transform })) {
    position++;
    const n = batch.labels.length;
    // Every image of this batch was skipped as corrupt (--skip-corrupt): nothing to learn from.
    if (n === 0) continue;
    const r = await trainStep(
      run,
      { x: batch.x, shape: [n, h, w, ch], labels: batch.labels },
      { phase, epoch, step: tally.step, steps },
    );
    tally.lossSum += r.loss * n;
    tally.correct += r.correct;
    tally.seen += n;
    for (const [k, v] of Object.entries(r.parts)) tally.partSums[k] = (tally.partSums[k] ?? 0) + v * n;
    tally.step++;
    // A macrotask turn: with every image cached the loop only awaits settled promises, and a signal
    // handler (Ctrl-C, SIGTERM from SageMaker or spot capacity) would not run until the epoch ended.
    await setImmediate();
    if (run.signal?.aborted && position < steps) await stopInsideEpoch(run, epoch, position, tally, steps);
    events?.onStep?.({
      epoch,
      phase,
      step: tally.step,
      steps,
      loss: tally.lossSum / tally.seen,
      accuracy: tally.correct / tally.seen,
      imagesPerSecond: tally.seen / secondsSince(tally.started),
    });
  }
  return { ...tally, seconds: secondsSince(tally.started) };
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

/** Checkpoints the epoch in progress with its running sums, then stops: --resume replays the rest exactly. */
async function stopInsideEpoch(
  run: RunContext,
  epoch: number,
  position: number,
  { step, lossSum, correct, seen, partSums, slotsBefore, started }: EpochTally,
  steps: number,
): Promise<never> {
  const seconds = secondsSince(started);
  run.state.inProgress = { epoch, position, step, lossSum, correct, seen, partSums, slotsBefore, seconds };
  const saved = await saveCheckpoint(run.outDir, run.model, run.opt, run.state, run.dataset);
  throw new TrainingStopped(
    `training stopped after step ${step} of ${steps} in epoch ${epoch + 1}; checkpointed in ${saved} (continue with --resume)`,
  );
}

/**
 * Slot revival, when asked, at the end of the joint epochs before the first learning-rate step, so that
 * prototypes and backbone still have time to serve the new slots.
 */
async function afterJointEpoch(run: RunContext, epoch: number): Promise<SlotMove[] | undefined> {
  const { config, model, splits } = run;
  const jointEpoch = epoch - config.epochs.warmup;
  if (!config.revive || jointEpoch + 1 >= config.lrStep.every) return undefined;
  const images = permutation(splits.train.size, deriveSeed(config.seed, epoch, STREAM.revival));
  return reviveSlots(model, splits.train, images.slice(0, config.revive.images), {
    minGap: config.revive.minGap,
    seedImages: jointEpoch >= config.revive.seedFrom ? config.revive.seedImages : 0,
  });
}

/** The epoch's record on the monitor split, saved as the resume point, then reported. */
async function finishEpoch(
  run: RunContext,
  epoch: number,
  phase: Phase,
  tally: EpochTally & { seconds: number },
  revived: SlotMove[] | undefined,
): Promise<void> {
  const { config, model, state, events } = run;
  const { seen, seconds } = tally;
  const test = await evaluate(model, run.splits.monitor, run.inferenceBatch);
  const record: EpochRecord = {
    epoch: epoch + 1,
    phase,
    trainLoss: tally.lossSum / seen,
    trainAccuracy: tally.correct / seen,
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
  const saved = await saveCheckpoint(run.outDir, model, run.opt, state, run.dataset);
  events?.onEpochEnd?.(record);
  const losses = Object.fromEntries(Object.entries(tally.partSums).map(([k, v]) => [k, v / seen]));
  const slotsMoved = hardAssignment(model.head.slotLogits)
    .flat()
    .filter((p, i) => p !== tally.slotsBefore[i]).length;
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
}

async function projectAtEnd(run: RunContext): Promise<ProjectionResult> {
  const projection = await project(run.model, run.splits.train, run.inferenceBatch);
  run.state.projection = projection;
  run.events?.onLog?.({ event: 'projection', unused: projection.unused, meanShift: projection.meanShift });
  return projection;
}
