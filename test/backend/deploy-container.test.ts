// SageMaker training-job conventions: hyperparameters → TrainConfig and data spec; a real tiny job writes /opt/ml/model.
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDeployCommands } from '../../gpu-backend/src/cli/deploy';
import { UsageError } from '../../gpu-backend/src/cli/errors';
import { EMBEDDED_FASHION_MNIST } from '../../gpu-backend/src/data/fashion-mnist';
import {
  HyperparameterError,
  runTrainingJob,
  sageMakerPaths,
  trainingJobFromHyperparameters,
} from '../../gpu-backend/src/deploy/container';
import { initEngine } from '../../gpu-backend/src/engine';
import { exists } from '../../gpu-backend/src/io/files';
import { loadModelDir, readManifest, verifyFiles } from '../../gpu-backend/src/io/model-files';
import { TrainConfig } from '../../gpu-backend/src/train/config';
import { flat, png } from '../helpers/image-files';
import { torchvisionEntries, writeSyntheticCheckpoint } from '../helpers/state-dicts';

const paths = sageMakerPaths('/opt/ml');
const map = (raw: unknown) => trainingJobFromHyperparameters(raw, paths);
const refusal = (raw: unknown) => {
  try {
    map(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(HyperparameterError);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('hyperparameters → training job', () => {
  it('defaults: Fashion-MNIST from the train channel, the default config', () => {
    const job = map({});
    expect(job).toEqual({
      config: TrainConfig.parse({}),
      configFor: expect.any(Function),
      dataSpec: 'fashion-mnist:/opt/ml/input/data/train',
      channel: 'train',
    });
    expect(job.configFor(10)).toEqual(job.config);
  });

  it('parses SageMaker string values into the config fields, by dotted path or by train-flag name', () => {
    const job = map({
      epochs: '3',
      'warmup-epochs': '0',
      'batch-size': '16',
      'train-limit': '500',
      seed: '7',
      'model.prototypes': '20',
      'model.backbone': 'resnet18',
      'model.focal': 'paper',
      'lr.backbone': '1e-4',
      'loss.sep': '-0.1',
      'mixup.alpha': '0.4',
      data: 'imagefolder?size=64&resize=letterbox',
      channel: 'training',
      sagemaker_region: '"eu-west-1"',
      _tuning_objective_metric: 'accuracy',
    });
    expect(job.dataSpec).toBe('imagefolder:/opt/ml/input/data/training?size=64&resize=letterbox');
    expect(job.channel).toBe('training');
    expect(job.config).toEqual(
      TrainConfig.parse({
        seed: 7,
        batchSize: 16,
        epochs: { joint: 3, warmup: 0 },
        limits: { train: 500 },
        model: { prototypes: 20, backbone: 'resnet18', focal: 'paper' },
        lr: { backbone: 1e-4 },
        loss: { sep: -0.1 },
        mixup: { alpha: 0.4 },
      }),
    );
  });

  it('accepts JSON-encoded strings (as the SageMaker Python SDK sends) and a whole config as JSON', () => {
    const job = map({
      data: '"cub?crop=box"',
      config: JSON.stringify({ model: { prototypes: 50, depth: 64 }, epochs: { joint: 8 } }),
      'model.prototypes': '"60"',
    });
    expect(job.dataSpec).toBe('cub:/opt/ml/input/data/train?crop=box');
    expect(job.config.model).toMatchObject({ prototypes: 60, depth: 64 });
    expect(job.config.epochs.joint).toBe(8);
  });

  it('uses a spec that names its own source as it is', () => {
    expect(map({ data: 'fashion-mnist:embedded' })).toMatchObject({
      dataSpec: 'fashion-mnist:embedded',
      channel: undefined,
    });
    expect(map({ data: 'parts' })).toMatchObject({ dataSpec: 'parts', channel: undefined });
    expect(refusal({ data: 'parts:3', channel: 'train' })).toContain('hyperparameter "channel"');
  });

  it('refuses unknown keys, naming the key and listing the known ones', () => {
    const message = refusal({ epochs: '2', learning_rate: '0.1' });
    expect(message).toMatch(
      /^unknown hyperparameter "learning_rate" \(known: data, channel, config, preset, epochs, /,
    );
    expect(message).toContain('lr.backbone');
    expect(refusal({ 'model.nope': '1' })).toMatch(/^unknown hyperparameter "model.nope"/);
  });

  it('takes a preset, a checkpoint from an input channel and a normalisation, as `protopool train` does', () => {
    const job = map({
      preset: 'cub-resnet34',
      'model.weights': 'weights/resnet34.pth',
      epochs: '2',
      'mixup.alpha': '0.2',
    });
    expect(job.config.model).toMatchObject({
      backbone: 'resnet34',
      prototypes: 202,
      weights: '/opt/ml/input/data/weights/resnet34.pth',
      normalise: 'imagenet',
    });
    expect(job.config.epochs).toEqual({ warmup: 10, joint: 2, lastLayer: 25 });
    expect(job.config.mixup).toEqual({ alpha: 0.2 });
    // The fine-tuning preset sizes its pool from the data's classes, known once the data is open.
    expect(map({ preset: 'finetune-resnet50' }).configFor(40).model.prototypes).toBe(42);
    expect(map({ 'model.normalise': 'imagenet', 'model.weights': '/w.pth' }).config.model).toMatchObject({
      normalise: 'imagenet',
      weights: '/w.pth',
    });
    expect(refusal({ preset: 'imagenet-vit' })).toMatch(
      /^hyperparameter "preset": unknown "imagenet-vit" \(known: cub-resnet50-inat/,
    );
  });

  it('names the key whose value is wrong', () => {
    expect(refusal({ epochs: 'ten' })).toBe('hyperparameter "epochs": "ten" is not a number');
    expect(refusal({ 'lr.backbone': '' })).toBe('hyperparameter "lr.backbone": "" is not a number');
    expect(refusal({ epochs: '1.5' })).toMatch(/^hyperparameter "epochs" \(epochs\.joint\): .*int/i);
    expect(refusal({ 'model.prototypes': '0' })).toMatch(/^hyperparameter "model.prototypes": Too small/);
    expect(refusal({ 'model.focal': 'other' })).toMatch(/^hyperparameter "model.focal": /);
    expect(refusal({ config: '{"model": {"size": 3}}' })).toMatch(
      /^hyperparameter "config" \(model\): .*size/,
    );
    expect(refusal({ config: '{oops' })).toMatch(/^hyperparameter "config": not valid JSON/);
    expect(refusal({ epochs: '2', 'epochs.joint': '3' })).toBe(
      'hyperparameters "epochs" and "epochs.joint" both set epochs.joint',
    );
    expect(refusal({ channel: '../etc' })).toContain('not a SageMaker channel name');
    expect(refusal({ epochs: { n: 1 } })).toBe('hyperparameter "epochs": expected a string value');
    expect(refusal([])).toContain('expected a JSON object');
  });
});

describe('the training entry (runTrainingJob, protopool sagemaker-train)', () => {
  const tiny = {
    'model.prototypes': '12',
    'model.slotsPerClass': '2',
    'model.depth': '16',
    'batch-size': '32',
    'warmup-epochs': '1',
    epochs: '1',
    'last-layer-epochs': '1',
    gumbelTime: '2',
    'train-limit': '96',
    'test-limit': '64',
    seed: '3',
  };
  const roots: string[] = [];
  const sageMakerRoot = async (hyperparameters: unknown, channel?: string) => {
    const root = await mkdtemp(join(tmpdir(), 'pp-sm-'));
    roots.push(root);
    const p = sageMakerPaths(root);
    await mkdir(join(p.hyperparameters, '..'), { recursive: true });
    await writeFile(p.hyperparameters, JSON.stringify(hyperparameters));
    if (channel) {
      await mkdir(p.channel(channel), { recursive: true });
      for (const f of await readdir(EMBEDDED_FASHION_MNIST)) {
        if (f.endsWith('.gz')) await copyFile(join(EMBEDDED_FASHION_MNIST, f), join(p.channel(channel), f));
      }
    }
    return p;
  };

  beforeAll(async () => {
    await initEngine('wasm');
  });
  afterAll(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  it('trains from the data channel and writes the model files into the model dir', async () => {
    const p = await sageMakerRoot({ ...tiny, data: 'fashion-mnist', channel: 'training' }, 'training');
    const lines: string[] = [];
    const result = await runTrainingJob({ root: p.root, engine: 'wasm', log: (l) => lines.push(l) });
    expect(result.modelDir).toBe(p.model);
    expect(result.dataSpec).toBe(`fashion-mnist:${p.channel('training')}`);
    expect((await readdir(p.model)).sort()).toEqual([
      'head.bin',
      'head.json',
      'manifest.json',
      'model.json',
      'prototypes',
      'weights.bin',
    ]);
    // Flat, complete and loadable: what `serve` reads from /opt/ml/model once model.tar.gz is unpacked.
    const manifest = await readManifest(p.model);
    expect(manifest.classes).toHaveLength(10);
    await verifyFiles(p.model, manifest);
    const loaded = await loadModelDir(p.model);
    loaded.model.dispose();
    expect(await exists(join(p.checkpoints, 'checkpoints', 'LATEST'))).toBe(true);
    expect(await exists(p.failure)).toBe(false);
    expect(lines.join('\n')).toContain('data: ');
  });

  it('starts from a PyTorch checkpoint in its own channel and normalises as the checkpoint expects', async () => {
    const p = await sageMakerRoot(
      {
        ...tiny,
        data: 'imagefolder?size=32',
        'model.backbone': 'resnet18',
        'model.weights': 'weights/resnet18.pth',
      },
      'train',
    );
    const folder = p.channel('train');
    await rm(folder, { recursive: true });
    for (const [name, colour] of [
      ['red', [200, 30, 30]],
      ['blue', [30, 40, 210]],
    ] as const) {
      for (const split of ['train', 'test']) {
        await mkdir(join(folder, split, name), { recursive: true });
        await writeFile(join(folder, split, name, 'a.png'), png('rgb', 8, 8, flat(8, 8, colour)));
      }
    }
    await mkdir(p.channel('weights'), { recursive: true });
    await writeSyntheticCheckpoint(
      join(p.channel('weights'), 'resnet18.pth'),
      torchvisionEntries('resnet18'),
    );
    await runTrainingJob({ root: p.root, engine: 'wasm' });
    const manifest = await readManifest(p.model);
    expect(manifest.input).toMatchObject({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    expect(manifest.architecture.backbone).toBe('resnet18');
  });

  it('writes output/failure naming the problem when the job cannot start', async () => {
    const p = await sageMakerRoot({ ...tiny, data: 'fashion-mnist' });
    await expect(runTrainingJob({ root: p.root, engine: 'wasm' })).rejects.toThrow(
      `data channel "train" not found at ${p.channel('train')}`,
    );
    expect(await readFile(p.failure, 'utf8')).toMatch(/^HyperparameterError: data channel "train" not found/);

    const q = await sageMakerRoot({ ...tiny, 'learning-rate': '0.1' });
    const err = await addDeployCommands(new Command('protopool').exitOverride())
      .parseAsync(['sagemaker-train', '--root', q.root], { from: 'user' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/^unknown hyperparameter "learning-rate"/);
    expect(await readFile(q.failure, 'utf8')).toContain('unknown hyperparameter "learning-rate"');
  });
});
