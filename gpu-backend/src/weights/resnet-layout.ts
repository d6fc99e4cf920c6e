// Where each torchvision ResNet weight lives in our backbone, and how a checkpoint's keys reach torchvision's.
//
// torchvision (and the ProtoPNet/ProtoPool `resnet_features.py`, which copies it):
//   conv1, bn1                                    → stem_conv, stem_bn
//   layer<s>.<b>.conv<j>, .bn<j>  (j = 1, 2[, 3])   → s<s>b<b+1>{a,b,c}_conv, _bn
//   layer<s>.<b>.downsample.0, .downsample.1        → s<s>b<b+1>down_conv, _bn
//   fc                                            → not part of a feature extractor
// A convolution [out, in, kh, kw] becomes [kh, kw, in, out]; a batch norm's weight, bias, running_mean and
// running_var become gamma, beta, moving_mean and moving_variance (eps 1e-5 on both sides; torchvision's
// ResNets never change it). `num_batches_tracked` only counts steps.
//
// The authors' iNaturalist ResNet-50 (BBN, "BBN.iNaturalist2017.res50.180epoch.best_model.pth") keeps its
// trunk under `module.backbone.`; its layer4 has two blocks and then two branches, `cb_block` (the
// conventional branch, which ProtoPool loads as layer4.2) and `rb_block` (the re-balancing branch, dropped),
// and a `module.classifier`. `canonicalKeys` maps that layout, any single prefix (`features.`,
// `backbone.`, `encoder.`…) and plain torchvision keys onto torchvision's names.
import { RESNET, type ResnetName, resnetBlockName } from '../model/backbones';

/** One weight our backbone needs: the torchvision key, PyTorch's shape, and where it goes. */
export interface WeightSlot {
  key: string;
  shape: number[];
  /** Our layer's name and the index of the weight in `layer.getWeights()`. */
  layer: string;
  index: number;
  /** Convolution kernels are transposed from [out, in, kh, kw] to [kh, kw, in, out]. */
  conv: boolean;
}

const BN_PARAMS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

function convSlots(key: string, layer: string, out: number, inC: number, k: number): WeightSlot {
  return { key: `${key}.weight`, shape: [out, inC, k, k], layer: `${layer}_conv`, index: 0, conv: true };
}

function bnSlots(key: string, layer: string, channels: number): WeightSlot[] {
  return BN_PARAMS.map((p, index) => ({
    key: `${key}.${p}`,
    shape: [channels],
    layer: `${layer}_bn`,
    index,
    conv: false,
  }));
}

/** Every weight of `arch` up to `stages`, in torchvision's order. */
export function torchvisionSlots(arch: ResnetName, stages = 4): WeightSlot[] {
  const { blocks, bottleneck } = RESNET[arch];
  const slots: WeightSlot[] = [convSlots('conv1', 'stem', 64, 3, 7), ...bnSlots('bn1', 'stem', 64)];
  let inC = 64;
  blocks.slice(0, stages).forEach((count, stage) => {
    const width = 64 * 2 ** stage;
    const outC = bottleneck ? width * 4 : width;
    for (let b = 0; b < count; b++) {
      const key = `layer${stage + 1}.${b}`;
      const name = resnetBlockName(stage, b);
      const convs: [number, number, number][] = bottleneck
        ? [
            [width, inC, 1],
            [width, width, 3],
            [outC, width, 1],
          ]
        : [
            [width, inC, 3],
            [width, width, 3],
          ];
      convs.forEach(([o, i, k], j) => {
        const ours = `${name}${'abc'[j]}`;
        slots.push(convSlots(`${key}.conv${j + 1}`, ours, o, i, k), ...bnSlots(`${key}.bn${j + 1}`, ours, o));
      });
      if (b === 0 && (stage > 0 || inC !== outC)) {
        slots.push(
          convSlots(`${key}.downsample.0`, `${name}down`, outC, inC, 1),
          ...bnSlots(`${key}.downsample.1`, `${name}down`, outC),
        );
      }
      inC = outC;
    }
  });
  return slots;
}

export type KeyLayout = 'torchvision' | 'bbn-inat' | `prefix:${string}`;

/**
 * The checkpoint's keys renamed to torchvision's, with the layout found. Keys the layout says to drop (the
 * BBN re-balancing branch and classifier) are left out; every other key is kept, renamed where it applies.
 */
export function canonicalKeys(keys: readonly string[]): { layout: KeyLayout; names: Map<string, string> } {
  const names = new Map<string, string>();
  if (keys.includes('conv1.weight')) {
    for (const k of keys) names.set(k, k);
    return { layout: 'torchvision', names };
  }
  // The prefix is whatever stands before the first block's first convolution, if exactly one does.
  const first = keys.filter((k) => k.endsWith('layer1.0.conv1.weight'));
  const prefix = first.length === 1 ? first[0]!.slice(0, -'layer1.0.conv1.weight'.length) : undefined;
  if (prefix === undefined) return { layout: 'torchvision', names: new Map(keys.map((k) => [k, k])) };
  const bbn = prefix === 'backbone.' && keys.some((k) => k.startsWith('backbone.cb_block.'));
  for (const k of keys) {
    if (bbn && (k.startsWith('backbone.rb_block.') || k.startsWith('classifier.'))) continue;
    if (bbn && k.startsWith('backbone.cb_block.'))
      names.set(k, `layer4.2.${k.slice('backbone.cb_block.'.length)}`);
    else names.set(k, k.startsWith(prefix) ? k.slice(prefix.length) : k);
  }
  return { layout: bbn ? 'bbn-inat' : `prefix:${prefix}`, names };
}

/** Blocks per stage and block kind that torchvision keys describe. */
function resnetShape(keys: ReadonlySet<string>): { bottleneck: boolean; blocks: number[] } {
  const blocks = [1, 2, 3, 4].map((s) => {
    let n = 0;
    while (keys.has(`layer${s}.${n}.conv1.weight`)) n++;
    return n;
  });
  return { bottleneck: keys.has('layer1.0.conv3.weight'), blocks };
}

/** The ResNet torchvision keys describe, if it is one we build. */
export function detectResnet(keys: ReadonlySet<string>): ResnetName | undefined {
  const { bottleneck, blocks } = resnetShape(keys);
  return (Object.keys(RESNET) as ResnetName[]).find(
    (a) => RESNET[a].bottleneck === bottleneck && RESNET[a].blocks.every((n, i) => n === blocks[i]),
  );
}

/** For error messages: what the keys hold, e.g. "a ResNet-50" or "bottleneck blocks 3-4-23-3". */
export function describeResnet(keys: ReadonlySet<string>): string {
  const found = detectResnet(keys);
  if (found) return `a ${found.replace('resnet', 'ResNet-')}`;
  const { bottleneck, blocks } = resnetShape(keys);
  return `${bottleneck ? 'bottleneck' : 'basic'} blocks ${blocks.join('-')} per stage`;
}
