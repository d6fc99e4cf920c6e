// Your own photos from a PyTorch checkpoint: `train --data imagefolder:… --preset finetune-resnet50 --weights …`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelManifest } from '@protopool/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/backend-process';
import { flat, png } from '../helpers/image-files';
import { torchvisionEntries, writeSyntheticCheckpoint } from '../helpers/state-dicts';

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

function run(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' },
  });
}

let dir: string;
let photos: string;
let resnet50: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pp-cli-pretrained-'));
  photos = join(dir, 'photos');
  const colours: Record<string, [number, number, number]> = {
    apple: [200, 30, 30],
    leaf: [30, 170, 40],
    sky: [60, 90, 220],
  };
  for (const [name, colour] of Object.entries(colours)) {
    for (const split of ['train', 'test']) {
      await mkdir(join(photos, split, name), { recursive: true });
      for (let i = 0; i < (split === 'train' ? 3 : 1); i++) {
        const shade = colour.map((v) => Math.min(255, v + 15 * i)) as [number, number, number];
        await writeFile(join(photos, split, name, `${i}.png`), png('rgb', 40, 30, flat(40, 30, shade)));
      }
    }
  }
  resnet50 = join(dir, 'resnet50.pth');
  await writeSyntheticCheckpoint(resnet50, torchvisionEntries('resnet50'));
}, 120_000);

describe('train from a PyTorch checkpoint on your own photos', () => {
  it('fine-tunes an ImageNet ResNet-50 with the finetune-resnet50 preset and records ImageNet normalisation', async () => {
    const out = join(dir, 'mine');
    const config = join(dir, 'tiny.json');
    await writeFile(config, JSON.stringify({ epochSize: 6, batchSize: 3 }));
    const r = run([
      'train',
      '--data',
      `imagefolder:${photos}?size=64`,
      '--preset',
      'finetune-resnet50',
      '--weights',
      resnet50,
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
    ]);
    expect(r.status, r.stderr).toBe(0);
    // What users see: engine and data lines, then one progress line per epoch, then the JSON summary.
    expect(r.stderr).toMatch(/engine: wasm/);
    expect(r.stderr).toMatch(/data: .*3 classes/);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toMatchObject({ modelDir: join(out, 'model') });
    const manifest = ModelManifest.parse(
      JSON.parse(await readFile(join(out, 'model', 'manifest.json'), 'utf8')),
    );
    expect(manifest.input).toMatchObject({ height: 64, width: 64, channels: 3, ...IMAGENET });
    // The preset sizes the pool from the classes: max(classes + 2, 20) prototypes, 5 slots each, depth 128.
    expect(manifest.architecture).toMatchObject({
      backbone: 'resnet50',
      prototypes: 20,
      slotsPerClass: 5,
      depth: 128,
    });
    const log = (await readFile(join(out, 'train.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(log.find((e) => e.event === 'pretrained')).toMatchObject({
      file: resnet50,
      layout: 'torchvision',
      ignored: 55,
    });
  });

  it.each([
    [
      'a preset that starts from a checkpoint, without --weights',
      ['--preset', 'cub-resnet50-inat'],
      /--preset cub-resnet50-inat starts from a pretrained backbone: pass --weights <file> \(BBN\.iNaturalist2017/,
    ],
    [
      'a missing checkpoint',
      ['--preset', 'finetune-resnet50', '--weights', '/does/not/exist.pth'],
      /--weights: \/does\/not\/exist\.pth: no such file/,
    ],
    [
      'a file that is no checkpoint',
      ['--preset', 'finetune-resnet50', '--weights', 'NOTES'],
      /--weights .*NOTES.*not a PyTorch checkpoint/,
    ],
    [
      'a checkpoint of another ResNet',
      ['--weights', 'R18', '--config', 'R50CFG'],
      /holds a ResNet-18, but the backbone is resnet50 \(set model\.backbone to "resnet18"\)/,
    ],
    [
      'a checkpoint for a backbone that is no ResNet',
      ['--weights', 'R18'],
      /model\.weights: a PyTorch checkpoint loads into a ResNet backbone .* not "small-cnn"/,
    ],
  ])('refuses %s: exit 2, the file named, nothing written', async (_what, args, message) => {
    const notes = join(dir, 'NOTES.txt');
    await writeFile(notes, 'not a checkpoint');
    const r18 = join(dir, 'resnet18.pth');
    if (!existsSync(r18)) await writeSyntheticCheckpoint(r18, torchvisionEntries('resnet18'));
    const r50cfg = join(dir, 'r50.json');
    await writeFile(r50cfg, JSON.stringify({ model: { backbone: 'resnet50' } }));
    const out = join(dir, `refused-${Math.random().toString(36).slice(2)}`);
    const swap = (a: string) => ({ NOTES: notes, R18: r18, R50CFG: r50cfg })[a] ?? a;
    const r = run(['train', '--data', `imagefolder:${photos}?size=64`, ...args.map(swap), '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });
});
