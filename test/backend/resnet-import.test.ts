// Importing PyTorch ResNets: torchvision's feature maps and logits, both key layouts, every mismatch named.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import type { ResnetName } from '../../gpu-backend/src/model/backbones';
import { importResnet } from '../../gpu-backend/src/weights/import-resnet';
import { CheckpointError } from '../../gpu-backend/src/weights/state-dict';
import { relativeError } from '../helpers/compare';
import { type Entries, syntheticStateDict, torchvisionEntries } from '../helpers/state-dicts';
import { syntheticInput, syntheticValues } from '../helpers/synthetic-weights';

interface GoldenTensor {
  shape: number[];
  data: string;
}
/** Made by scripts/torch/make-resnet-goldens.py with torchvision on the same synthetic weights and input. */
const golden = JSON.parse(
  readFileSync(new URL('../fixtures/resnet-parity.json', import.meta.url), 'utf8'),
) as {
  input: { shape: [number, number, number, number] };
  models: Record<
    'resnet18' | 'resnet50',
    { stem: GoldenTensor; features: GoldenTensor; logits: GoldenTensor }
  >;
};
const values = (t: GoldenTensor) => {
  const bytes = Buffer.from(t.data, 'base64');
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
};

const [n, c, h, w] = golden.input.shape;
/** The golden input, NCHW as PyTorch took it, transposed to our NHWC. */
const input = () =>
  tf.tidy(() => tf.transpose(tf.tensor4d(syntheticInput([n, c, h, w]), [n, c, h, w]), [0, 2, 3, 1]));

beforeAll(async () => {
  await initEngine('wasm');
});

async function importSynthetic(arch: ResnetName, entries: Entries, valueKey?: (k: string) => string) {
  return importResnet(syntheticStateDict(entries, 'synthetic.pth', valueKey), {
    arch,
    inputShape: [h, w, c],
    seed: 1,
  });
}

describe.each(['resnet18', 'resnet50'] as const)('an imported torchvision %s', (arch) => {
  it("gives PyTorch's stem output, layer4 feature maps and logits within 1e-4 (relative)", async () => {
    const before = tf.memory().numTensors;
    const { backbone, report } = await importSynthetic(arch, torchvisionEntries(arch));
    expect(report.layout).toBe('torchvision');
    expect(report.ignored.sort()).toEqual(
      torchvisionEntries(arch)
        .map(([k]) => k)
        .filter((k) => k.startsWith('fc.') || k.endsWith('num_batches_tracked'))
        .sort(),
    );
    const x = input();
    const stemModel = tf.model({ inputs: backbone.inputs, outputs: backbone.getLayer('stem_pool').output });
    const [stem, features] = [stemModel.predict(x) as tf.Tensor, backbone.predict(x) as tf.Tensor4D];
    const ref = golden.models[arch];
    expect(stem.shape).toEqual(ref.stem.shape);
    expect(features.shape).toEqual(ref.features.shape);
    expect(relativeError(await stem.data(), values(ref.stem))).toBeLessThan(1e-4);
    expect(relativeError(await features.data(), values(ref.features))).toBeLessThan(1e-4);
    // The classifier torchvision puts on top: global average pool, then fc (not part of our backbone).
    const [fcW, fcB] = [
      torchvisionEntries(arch).find(([k]) => k === 'fc.weight')!,
      torchvisionEntries(arch).find(([k]) => k === 'fc.bias')!,
    ];
    const logits = tf.tidy(() =>
      tf.add(
        tf.matMul(
          tf.mean(features, [1, 2]),
          tf.tensor2d(syntheticValues(fcW[0], fcW[1]), fcW[1] as [number, number]),
          false,
          true,
        ),
        tf.tensor1d(syntheticValues(fcB[0], fcB[1])),
      ),
    );
    expect(logits.shape).toEqual(ref.logits.shape);
    expect(relativeError(await logits.data(), values(ref.logits))).toBeLessThan(1e-4);
    tf.dispose([x, stem, features, logits]);
    backbone.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('key layouts', () => {
  /** The authors' iNaturalist ResNet-50 (BBN): trunk under backbone., layer4.2 as cb_block, an rb_block twin. */
  function bbnEntries(): { entries: Entries; source: Map<string, string> } {
    const entries: Entries = [];
    const source = new Map<string, string>();
    for (const [k, shape] of torchvisionEntries('resnet50')) {
      if (k.startsWith('fc.')) continue;
      const renamed = k.startsWith('layer4.2.') ? `backbone.cb_block.${k.slice(9)}` : `backbone.${k}`;
      entries.push([renamed, shape]);
      source.set(renamed, k);
      if (k.startsWith('layer4.2.')) entries.push([`backbone.rb_block.${k.slice(9)}`, shape]);
    }
    entries.push(['classifier.weight', [8142, 4096]], ['classifier.bias', [8142]]);
    return { entries, source };
  }

  it("reads the authors' iNaturalist ResNet-50 layout: cb_block is layer4.2, rb_block and classifier dropped", async () => {
    const before = tf.memory().numTensors;
    const { entries, source } = bbnEntries();
    const bbn = await importSynthetic('resnet50', entries, (k) => source.get(k) ?? k);
    expect(bbn.report.layout).toBe('bbn-inat');
    const x = input();
    const features = bbn.backbone.predict(x) as tf.Tensor;
    expect(relativeError(await features.data(), values(golden.models.resnet50.features))).toBeLessThan(1e-4);
    tf.dispose([x, features]);
    bbn.backbone.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('strips a single prefix such as features. (a ProtoPNet-style model holding the trunk)', async () => {
    const entries: Entries = torchvisionEntries('resnet18').map(([k, s]) => [`features.${k}`, s]);
    const { backbone, report } = await importSynthetic('resnet18', entries, (k) =>
      k.slice('features.'.length),
    );
    expect(report.layout).toBe('prefix:features.');
    backbone.dispose();
  });

  it('loads only the stages kept: layer4 of a cut backbone is ignored, not unexpected', async () => {
    const { backbone, report } = await importResnet(syntheticStateDict(torchvisionEntries('resnet18')), {
      arch: 'resnet18',
      inputShape: [64, 64, 3],
      stages: 3,
      seed: 1,
    });
    expect(backbone.outputs[0]!.shape).toEqual([null, 4, 4, 256]);
    expect(report.ignored.filter((k) => k.startsWith('layer4.')).length).toBeGreaterThan(0);
    backbone.dispose();
  });
});

describe('mismatches are refused with every key named', () => {
  const attempt = async (arch: ResnetName, entries: Entries) => {
    const before = tf.memory().numTensors;
    const err = await importSynthetic(arch, entries).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(err).toBeInstanceOf(CheckpointError);
    return (err as Error).message;
  };

  it('names missing keys with their expected shapes', async () => {
    const entries = torchvisionEntries('resnet18').filter(([k]) => !k.startsWith('layer2.1.bn2.'));
    const message = await attempt('resnet18', entries);
    expect(message).toContain('synthetic.pth');
    expect(message).toContain('missing (4)');
    expect(message).toContain('layer2.1.bn2.running_var [128]');
  });

  it('names a mis-shaped key with expected and found shapes', async () => {
    const entries = torchvisionEntries('resnet18').map(([k, s]): [string, number[]] =>
      k === 'layer3.0.conv1.weight' ? [k, [256, 128, 1, 1]] : [k, s],
    );
    const message = await attempt('resnet18', entries);
    expect(message).toContain('layer3.0.conv1.weight: expected [256, 128, 3, 3], found [256, 128, 1, 1]');
  });

  it('names unexpected keys', async () => {
    const message = await attempt('resnet18', [
      ...torchvisionEntries('resnet18'),
      ['layer1.0.se.fc.weight', [4, 64]],
    ]);
    expect(message).toContain('unexpected (1)');
    expect(message).toContain('layer1.0.se.fc.weight [4, 64]');
  });

  it('says which ResNet a checkpoint holds when the configuration asks for another', async () => {
    const message = await attempt('resnet18', torchvisionEntries('resnet50'));
    expect(message).toContain(
      'holds a ResNet-50, but the backbone is resnet18 (set model.backbone to "resnet50")',
    );
  });

  it('refuses grey input: ImageNet backbones take RGB', async () => {
    await expect(
      importResnet(syntheticStateDict(torchvisionEntries('resnet18')), {
        arch: 'resnet18',
        inputShape: [64, 64, 1],
        seed: 1,
      }),
    ).rejects.toThrow(/RGB input/);
  });
});
