// The paper's CUB recipe end to end: a PyTorch ResNet-50 checkpoint → `train --preset` → `protopool serve` → edge.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explanationId, ModelManifest } from '@protopool/shared';
import { imageToInput } from '@protopool/shared/image';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initImageCodecs } from '../../gpu-backend/src/data/image-node';
import { type LocalStack, startLocalStack } from '../../scripts/local-stack';
import { CLI, freePort } from '../helpers/backend-process';
import { CUB_CLASSES, type CubImage, writeCubFixture } from '../helpers/cub-fixture';
import { jpeg } from '../helpers/image-files';
import { torchvisionEntries, writeSyntheticCheckpoint } from '../helpers/state-dicts';

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const COLOURS: [number, number, number][] = [
  [200, 40, 40],
  [40, 160, 60],
  [50, 70, 210],
];

function bird(cls: number, train: boolean, shift: number): CubImage {
  return {
    cls,
    train,
    width: 96,
    height: 80,
    background: [230, 225, 210],
    foreground: COLOURS[cls]!,
    box: { x: 10 + shift, y: 8, w: 60, h: 56 },
    parts: [
      [20 + shift, 20, 1],
      [50 + shift, 30, 1],
      [40 + shift, 50, shift % 2 === 0 ? 1 : 0],
    ],
  };
}

describe('CUB preset with a PyTorch ResNet-50 checkpoint', () => {
  let modelDir: string;
  let stack: LocalStack | undefined;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-cub-pretrained-'));
    // What a user brings: torch.save(resnet50().state_dict()) — here synthetic weights in torch's own zip format.
    const weights = join(dir, 'resnet50.pth');
    await writeSyntheticCheckpoint(weights, torchvisionEntries('resnet50'));
    const cub = await writeCubFixture(
      [0, 1, 2].flatMap((c) => [bird(c, true, 0), bird(c, true, 6), bird(c, false, 3)]),
    );
    // A tiny epoch budget on top of the preset: everything else is the published recipe.
    const config = join(dir, 'tiny.json');
    await writeFile(config, JSON.stringify({ epochSize: 6, monitorSize: 3, batchSize: 3 }));
    const out = join(dir, 'run');
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'train',
        '--preset',
        'cub-resnet50-inat',
        '--data',
        `cub:${cub}`,
        '--weights',
        weights,
        '--config',
        config,
        '--warmup-epochs',
        '1',
        '--epochs',
        '1',
        '--last-layer-epochs',
        '1',
        '--out',
        out,
        '--json',
      ],
      { encoding: 'utf8', env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' }, timeout: 600_000 },
    );
    if (r.status !== 0) throw new Error(`train exited ${r.status}:\n${r.stderr}`);
    modelDir = join(out, 'model');
    const log = (await readFile(join(out, 'train.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(log.find((e) => e.event === 'pretrained')).toMatchObject({
      layout: 'torchvision',
      format: 'torch-zip',
      loaded: 265,
    });
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it("records the paper's architecture and ImageNet's normalisation in the manifest", async () => {
    const manifest = ModelManifest.parse(JSON.parse(await readFile(join(modelDir, 'manifest.json'), 'utf8')));
    expect(manifest.classes).toEqual(CUB_CLASSES.map((c) => c.slice(4).replaceAll('_', ' ')));
    expect(manifest.input).toMatchObject({
      height: 224,
      width: 224,
      channels: 3,
      resize: 'stretch',
      ...IMAGENET,
    });
    expect(manifest.architecture).toMatchObject({
      backbone: 'resnet50',
      prototypes: 202,
      slotsPerClass: 10,
      depth: 256,
      featureGrid: { height: 7, width: 7 },
    });
    expect(manifest.training?.config).toMatchObject({
      model: { weights: expect.stringMatching(/resnet50\.pth$/) },
      gumbelTime: 30,
    });
  });

  it('serves through protopool serve and the edge, which normalises uploads as training did', async () => {
    stack = await startLocalStack({
      models: modelDir,
      backendPort: await freePort(),
      edgePort: await freePort(),
      quiet: true,
    });
    const manifest = ModelManifest.parse(await (await fetch(`${stack.edgeUrl}/v1/model`)).json());
    expect(manifest.input.mean).toEqual(IMAGENET.mean);
    const photo = await jpeg(
      96,
      80,
      Array.from({ length: 96 * 80 }, (_, i) => COLOURS[1]!.map((v) => (v + i) % 256)).flat(),
    );
    const res = await fetch(`${stack.edgeUrl}/v1/classify?topK=3`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'image/jpeg' },
      body: new Uint8Array(photo),
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { id: string; modelVersion: string; topK: unknown[] };
    expect(answer.modelVersion).toBe(manifest.version);
    expect(answer.topK).toHaveLength(3);
    // The id addresses sha256(version ‖ input tensor): equal only if the edge resized and normalised the
    // upload exactly as the manifest (ImageNet mean/std) says.
    await initImageCodecs();
    const data = await imageToInput(photo, manifest.input);
    const tensor = { dtype: 'float32' as const, shape: [1, 224, 224, 3], data };
    expect(answer.id).toBe(await explanationId(manifest.version, tensor));
  });
});
