// SageMaker training-job conventions: hyperparameters.json → TrainConfig, data channels, /opt/ml/model, failure file.
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { z } from 'zod';
import { openDataset } from '../data/specs';
import { type EngineInfo, engineSummary, initEngine } from '../engine';
import { exists } from '../io/files';
import { latestCheckpoint } from '../train/checkpoint';
import { mergeConfig, normalisationOf, TrainConfig } from '../train/config';
import { PRESETS, presetConfig } from '../train/presets';
import { type TrainEvents, TrainingStopped, type TrainResult, train } from '../train/trainer';

export const SAGEMAKER_ROOT = '/opt/ml';

/** Where SageMaker puts inputs and collects outputs, under `root` (injectable for tests and local runs). */
export function sageMakerPaths(root: string = SAGEMAKER_ROOT) {
  return {
    root,
    hyperparameters: join(root, 'input', 'config', 'hyperparameters.json'),
    channel: (name: string) => join(root, 'input', 'data', name),
    /** Uploaded as model.tar.gz when the job succeeds. */
    model: join(root, 'model'),
    /** SageMaker's default checkpoint path (synced with S3 when the job configures checkpoints). */
    checkpoints: join(root, 'checkpoints'),
    /** Uploaded as output.tar.gz. */
    outputData: join(root, 'output', 'data'),
    /** Its text becomes the job's FailureReason. */
    failure: join(root, 'output', 'failure'),
  };
}
export type SageMakerPaths = ReturnType<typeof sageMakerPaths>;

export class HyperparameterError extends Error {
  override name = 'HyperparameterError';
}

/** Keys that are not TrainConfig paths. */
const SPECIAL = ['data', 'channel', 'config', 'preset'] as const;
/** The `protopool train` flag names, for people who think in flags. */
const ALIASES: Record<string, string> = {
  epochs: 'epochs.joint',
  'warmup-epochs': 'epochs.warmup',
  'last-layer-epochs': 'epochs.lastLayer',
  'batch-size': 'batchSize',
  'train-limit': 'limits.train',
  'test-limit': 'limits.test',
};
/** Channel names SageMaker accepts. */
const CHANNEL = /^[A-Za-z0-9._-]{1,64}$/;
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

type Leaf = 'number' | 'string';
type Def = { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; options?: z.ZodType[] };

/** The settable leaves of TrainConfig as dotted paths ("lr.backbone" → number), read off the schema. */
function configLeaves(): Map<string, Leaf> {
  const leaves = new Map<string, Leaf>();
  const walk = (schema: z.ZodType, prefix: string) => {
    let def = schema._zod.def as Def;
    while ((def.type === 'default' || def.type === 'prefault' || def.type === 'optional') && def.innerType) {
      def = def.innerType._zod.def as Def;
    }
    if (def.type === 'union' && def.options) {
      // e.g. mixup (false | {alpha}) and model.normalise ('data' | 'imagenet' | {mean, std}).
      for (const option of def.options) walk(option, prefix);
    } else if (def.type === 'object' && def.shape) {
      for (const [key, child] of Object.entries(def.shape)) walk(child, prefix ? `${prefix}.${key}` : key);
    } else if (def.type === 'number') {
      leaves.set(prefix, 'number');
    } else if (def.type === 'string' || def.type === 'enum') {
      leaves.set(prefix, 'string');
    }
  };
  walk(TrainConfig, '');
  return leaves;
}

const LEAVES = configLeaves();

/** Every key a hyperparameters.json may hold. */
export function knownHyperparameters(): string[] {
  return [...SPECIAL, ...Object.keys(ALIASES), ...LEAVES.keys()];
}

/** SageMaker passes every value as a string; some SDKs also JSON-encode them ("\"abc\""), so unquote those. */
function text(key: string, value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string')
    throw new HyperparameterError(`hyperparameter "${key}": expected a string value`);
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    try {
      const inner = JSON.parse(value);
      if (typeof inner === 'string') return inner;
    } catch {
      // not JSON after all: keep the text as it is
    }
  }
  return value;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[keys.at(-1)!] = value;
}

export interface TrainingJob {
  /** Checked with the preset sized for two classes; `configFor` gives the one for the data's classes. */
  config: TrainConfig;
  /** The config for `classes` classes (a preset may size its pool from them). */
  configFor(classes: number): TrainConfig;
  /** The data spec for `openDataset`. */
  dataSpec: string;
  /** The channel the data comes from, or undefined when the spec names its own source. */
  channel: string | undefined;
}

/**
 * Maps SageMaker hyperparameters (a flat object of strings) to a TrainConfig and a data spec.
 *   data     dataset kind, with options: "fashion-mnist", "imagefolder?size=64", "cub"… read from the channel;
 *            a spec with its own source ("fashion-mnist:embedded", "parts:7", "parts") is used as it is.
 *   channel  input channel holding the data [train] → <root>/input/data/<channel>
 *   preset   a `train --preset` recipe (cub-resnet50-inat, …); `config` and the keys below override it
 *   config   a whole TrainConfig as JSON; the keys below override its fields
 *   model.weights  a PyTorch checkpoint; a relative path is read from the input channels
 *            ("weights/resnet50.pth" → <root>/input/data/weights/resnet50.pth)
 *   <path>   any TrainConfig field as a dotted path: seed, batchSize, model.prototypes, lr.backbone, mixup.alpha…
 *   epochs, warmup-epochs, last-layer-epochs, batch-size, train-limit, test-limit: as the `train` flags.
 * Keys starting with "sagemaker_" or "_" are set by SageMaker itself (e.g. _tuning_objective_metric) and skipped.
 */
export function trainingJobFromHyperparameters(raw: unknown, paths: SageMakerPaths): TrainingJob {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HyperparameterError(`${paths.hyperparameters}: expected a JSON object of hyperparameters`);
  }
  const special: Partial<Record<(typeof SPECIAL)[number], string>> = {};
  const values: Record<string, unknown> = {};
  /** Which hyperparameter set each config path, to name it in errors. */
  const setBy = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    if (key.startsWith('sagemaker_') || key.startsWith('_')) continue;
    const v = text(key, value);
    if ((SPECIAL as readonly string[]).includes(key)) {
      special[key as (typeof SPECIAL)[number]] = v;
      continue;
    }
    const path = ALIASES[key] ?? key;
    const leaf = LEAVES.get(path);
    if (!leaf) {
      throw new HyperparameterError(
        `unknown hyperparameter "${key}" (known: ${knownHyperparameters().join(', ')})`,
      );
    }
    const earlier = setBy.get(path);
    if (earlier) throw new HyperparameterError(`hyperparameters "${earlier}" and "${key}" both set ${path}`);
    setBy.set(path, key);
    if (leaf === 'number') {
      if (!NUMBER.test(v.trim()))
        throw new HyperparameterError(`hyperparameter "${key}": "${v}" is not a number`);
      setPath(values, path, Number(v));
    } else {
      setPath(values, path, v);
    }
  }

  let base: Record<string, unknown> = {};
  if (special.config !== undefined) {
    try {
      base = JSON.parse(special.config);
    } catch (err) {
      throw new HyperparameterError(`hyperparameter "config": not valid JSON (${(err as Error).message})`);
    }
    if (typeof base !== 'object' || base === null || Array.isArray(base)) {
      throw new HyperparameterError('hyperparameter "config": expected a JSON object (a TrainConfig)');
    }
  }
  const merged = structuredClone(base);
  for (const path of setBy.keys()) {
    setPath(
      merged,
      path,
      path.split('.').reduce<unknown>((n, k) => (n as Record<string, unknown>)[k], values),
    );
  }
  const weights = (merged.model as { weights?: unknown } | undefined)?.weights;
  if (typeof weights === 'string' && !isAbsolute(weights))
    setPath(merged, 'model.weights', paths.channel(weights));
  const preset = special.preset;
  if (preset !== undefined && !(preset in PRESETS)) {
    throw new HyperparameterError(
      `hyperparameter "preset": unknown "${preset}" (known: ${Object.keys(PRESETS).join(', ')})`,
    );
  }
  const configFor = (classes: number): TrainConfig => {
    const parsed = TrainConfig.safeParse(
      preset ? mergeConfig(presetConfig(preset, classes), merged) : merged,
    );
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0]!;
    const path = issue.path.join('.');
    // A field no key set comes from the config JSON or, without one, from the preset.
    const key = setBy.get(path) ?? (preset && special.config === undefined ? 'preset' : 'config');
    throw new HyperparameterError(
      `hyperparameter "${key}"${key === path ? '' : ` (${path || 'root'})`}: ${issue.message}`,
    );
  };
  const config = configFor(2);

  const data = special.data ?? 'fashion-mnist';
  const q = data.indexOf('?');
  const head = q < 0 ? data : data.slice(0, q);
  const query = q < 0 ? '' : data.slice(q);
  if (head.includes(':') || head === 'parts') {
    if (special.channel !== undefined) {
      throw new HyperparameterError(`hyperparameter "channel": "data" (${data}) already names its source`);
    }
    return { config, configFor, dataSpec: data, channel: undefined };
  }
  const channel = special.channel ?? 'train';
  if (!CHANNEL.test(channel)) {
    throw new HyperparameterError(`hyperparameter "channel": "${channel}" is not a SageMaker channel name`);
  }
  return { config, configFor, dataSpec: `${head}:${paths.channel(channel)}${query}`, channel };
}

/** Reads hyperparameters.json; a run outside SageMaker may have none (all defaults). */
export async function readHyperparameters(paths: SageMakerPaths): Promise<unknown> {
  let body: string;
  try {
    body = await readFile(paths.hyperparameters, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new HyperparameterError(`${paths.hyperparameters}: not valid JSON (${(err as Error).message})`);
  }
}

export interface TrainingJobOptions {
  /** The SageMaker root [/opt/ml]. */
  root?: string;
  /** TF.js engine choice (the image sets PROTOPOOL_ENGINE=tensorflow-gpu). */
  engine?: string;
  events?: TrainEvents;
  signal?: AbortSignal;
  /** Start-up lines (engine, data, resume). */
  log?: (line: string) => void;
}

export interface TrainingJobResult extends TrainResult {
  engine: EngineInfo;
  dataSpec: string;
}

/**
 * The container's `train`: hyperparameters → config, train with checkpoints in <root>/checkpoints (so a
 * restarted spot job resumes), copy the final model into <root>/model. On failure writes
 * <root>/output/failure (SageMaker's FailureReason) and rethrows; a stop (SIGTERM) writes none.
 */
export async function runTrainingJob(o: TrainingJobOptions = {}): Promise<TrainingJobResult> {
  const paths = sageMakerPaths(o.root);
  const log = o.log ?? (() => {});
  try {
    const job = trainingJobFromHyperparameters(await readHyperparameters(paths), paths);
    if (job.channel && !(await exists(paths.channel(job.channel)))) {
      throw new HyperparameterError(
        `data channel "${job.channel}" not found at ${paths.channel(job.channel)}: give the training job an input channel of that name, or set the hyperparameter "channel"`,
      );
    }
    if (job.config.model.weights && !(await exists(job.config.model.weights))) {
      throw new HyperparameterError(
        `hyperparameter "model.weights": ${job.config.model.weights} not found (give the job a channel holding the checkpoint)`,
      );
    }
    // A pretrained backbone's convention replaces the images' statistics, as `protopool train` does.
    const normalisation = normalisationOf(job.config.model);
    const dataset = await openDataset(job.dataSpec, normalisation ? { normalisation } : {}).catch(
      (err: Error) => {
        throw new HyperparameterError(`data ${job.dataSpec}: ${err.message}`);
      },
    );
    const engine = await initEngine(o.engine);
    const checkpoint = await latestCheckpoint(paths.checkpoints);
    log(`engine: ${engineSummary(engine)}`);
    log(`data: ${dataset.description}`);
    if (checkpoint) log(`resuming from ${checkpoint}`);
    const result = await train({
      dataset,
      config: job.configFor(dataset.classes.length),
      outDir: paths.checkpoints,
      resume: checkpoint !== null,
      command: 'protopool sagemaker-train',
      events: o.events,
      signal: o.signal,
    });
    // /opt/ml/model exists already in SageMaker (possibly a mount): copy into it rather than replace it.
    await mkdir(paths.model, { recursive: true });
    await cp(result.modelDir, paths.model, { recursive: true });
    return { ...result, modelDir: paths.model, engine, dataSpec: job.dataSpec };
  } catch (err) {
    if (!(err instanceof TrainingStopped)) {
      await mkdir(join(paths.failure, '..'), { recursive: true });
      await writeFile(paths.failure, `${(err as Error).name}: ${(err as Error).message}\n`.slice(0, 4096));
    }
    throw err;
  }
}
