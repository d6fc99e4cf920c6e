// Checkpoints: one directory per completed epoch (or stop mid-epoch), written atomically, with a LATEST pointer; exact resume.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset';
import { exists, readJson, sha256, writeDirAtomic, writeFileAtomic } from '../io/files';
import { loadModelDir, ModelFileError, serialiseModel } from '../io/model-files';
import type { ProtoPoolModel } from '../model/protopool';
import type { TrainConfig } from './config';
import { buildManifest } from './manifest';
import type { GroupedAdam } from './optimizer';
import type { ProjectionResult } from './projection';

export interface EpochRecord {
  epoch: number;
  phase: string;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
  testLoss: number;
  prototypesUsed: number;
  gumbelScale: number;
  imagesPerSecond: number;
  seconds: number;
}

/** Where a run stopped inside an epoch (Ctrl-C, SIGTERM): the next batch and the epoch's running sums. */
export interface EpochInProgress {
  epoch: number;
  /** Index of the next batch in the epoch's batch list. */
  position: number;
  /** Optimizer steps taken in the epoch (batches skipped as corrupt take none). */
  step: number;
  lossSum: number;
  correct: number;
  seen: number;
  /** Each loss term summed over the epoch's images. */
  partSums: Record<string, number>;
  /** Each slot's prototype as the epoch began: how many move tells whether the assignment still learns. */
  slotsBefore: number[];
  seconds: number;
}

export interface TrainerState {
  config: TrainConfig;
  dataSpec: string;
  command: string;
  epochsCompleted: number;
  inProgress?: EpochInProgress;
  projection: ProjectionResult | null;
  history: EpochRecord[];
  optimizerSpecs: tf.io.WeightsManifestEntry[];
}

const KEEP = 2;
const CHECKPOINT_NAME = /^epoch-\d{4}(-step-\d{5})?$/;

export function checkpointsDir(outDir: string): string {
  return join(outDir, 'checkpoints');
}

export async function saveCheckpoint(
  outDir: string,
  model: ProtoPoolModel,
  optimizer: GroupedAdam,
  state: Omit<TrainerState, 'optimizerSpecs'>,
  dataset: Dataset,
): Promise<string> {
  const serialised = await serialiseModel(model);
  const opt = await optimizer.encodeState();
  const trainer = JSON.stringify({ ...state, optimizerSpecs: opt.specs } satisfies TrainerState);
  const extra = { 'optimizer.bin': opt.data, 'trainer.json': trainer };
  const last = state.history.at(-1);
  const manifest = buildManifest({
    model,
    dataset,
    serialised,
    extraChecksums: Object.entries(extra).map(([path, c]) => ({
      path,
      bytes: typeof c === 'string' ? Buffer.byteLength(c) : c.byteLength,
      sha256: sha256(c),
    })),
    prototypes: state.projection?.prototypes,
    metrics: last
      ? { accuracy: last.testAccuracy, loss: last.testLoss, prototypesUsed: last.prototypesUsed }
      : {},
    training: {
      command: state.command,
      dataset: dataset.description,
      epochsCompleted: state.epochsCompleted,
      phase: last?.phase ?? 'none',
      config: state.config as unknown as Record<string, unknown>,
    },
    name: `checkpoint-epoch-${state.epochsCompleted}${state.inProgress ? `-step-${state.inProgress.step}` : ''}`,
  });
  // Mid-epoch checkpoints sort between the epochs they fall between: epoch-0002 < epoch-0002-step-00017.
  const name = `epoch-${String(state.epochsCompleted).padStart(4, '0')}${
    state.inProgress ? `-step-${String(state.inProgress.step).padStart(5, '0')}` : ''
  }`;
  const dir = checkpointsDir(outDir);
  await writeDirAtomic(join(dir, name), {
    ...serialised.files,
    ...extra,
    'manifest.json': JSON.stringify(manifest, null, 2),
  });
  // The pointer moves only once the checkpoint is complete on disk.
  await writeFileAtomic(join(dir, 'LATEST'), `${name}\n`);
  const all = (await readdir(dir)).filter((n) => CHECKPOINT_NAME.test(n)).sort();
  for (const old of all.slice(0, Math.max(0, all.length - KEEP)))
    await rm(join(dir, old), { recursive: true, force: true });
  return join(dir, name);
}

/** The newest complete checkpoint directory, or null when the run has none. */
export async function latestCheckpoint(outDir: string): Promise<string | null> {
  const dir = checkpointsDir(outDir);
  const pointer = join(dir, 'LATEST');
  if (!(await exists(pointer))) return null;
  const name = (await readFile(pointer, 'utf8')).trim();
  if (!CHECKPOINT_NAME.test(name))
    throw new ModelFileError(`${pointer}: does not name a checkpoint ("${name}")`);
  return join(dir, name);
}

export async function loadCheckpoint(dir: string) {
  const { model, manifest } = await loadModelDir(dir);
  const state = (await readJson(join(dir, 'trainer.json'))) as TrainerState;
  const optimizerData = new Uint8Array(await readFile(join(dir, 'optimizer.bin')));
  return { model, manifest, state, optimizerData };
}
