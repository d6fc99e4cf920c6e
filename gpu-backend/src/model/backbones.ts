// Feature extractors (NHWC): a small CNN for 28–64 px, ResNet-18/34/50, or any layers model cut at a layer.
import * as tf from '@tensorflow/tfjs';
import { batchNormalization } from './batch-norm';
import { conv2d } from './conv2d';

export const BACKBONES = ['small-cnn', 'resnet18', 'resnet34', 'resnet50'] as const;
export type BackboneName = (typeof BACKBONES)[number];

export interface BackboneSpec {
  name: BackboneName;
  inputShape: [number, number, number];
  /** Seed for weight initialisation: the same seed gives the same weights. */
  seed: number;
  /** ResNets: how many of the four stages to keep (default 4, the whole trunk). */
  stages?: number;
}

/** Seeded initialisers so that a run reproduces; each layer gets its own stream. */
class Seeds {
  private next: number;
  constructor(seed: number) {
    this.next = seed * 1000;
  }
  he() {
    return tf.initializers.heNormal({ seed: this.next++ });
  }
}

const BN = { momentum: 0.9, epsilon: 1e-5 }; // PyTorch's BatchNorm2d defaults (momentum 0.1 there)

/**
 * PyTorch's symmetric padding: a k×k convolution (or pool) pads (k − 1)/2 on every side. TF's 'same' agrees
 * at stride 1 but at stride 2 on an even side pads only bottom/right (a 7×7/2 stem: 2 before, 3 after), which
 * shifts every window by a pixel. So strided layers get an explicit ZeroPadding2D and 'valid'.
 */
function torchPad(x: tf.SymbolicTensor, kernel: number, name: string): tf.SymbolicTensor {
  const p = (kernel - 1) / 2;
  return tf.layers.zeroPadding2d({ padding: [p, p], name }).apply(x) as tf.SymbolicTensor;
}

/** conv-BN(-ReLU); `padding` 'torch' pads as PyTorch does (`torchPad`), 'tf' as TF's 'same'. */
function convBn(
  x: tf.SymbolicTensor,
  filters: number,
  kernel: number,
  stride: number,
  seeds: Seeds,
  name: string,
  relu: boolean,
  padding: 'tf' | 'torch' = 'tf',
): tf.SymbolicTensor {
  const explicit = padding === 'torch' && stride > 1 && kernel > 1;
  let y = conv2d({
    filters,
    kernelSize: kernel,
    strides: stride,
    padding: explicit ? 'valid' : 'same',
    useBias: false,
    kernelInitializer: seeds.he(),
    name: `${name}_conv`,
  }).apply(explicit ? torchPad(x, kernel, `${name}_pad`) : x) as tf.SymbolicTensor;
  y = batchNormalization({ ...BN, name: `${name}_bn` }).apply(y) as tf.SymbolicTensor;
  return relu ? (tf.layers.reLU({ name: `${name}_relu` }).apply(y) as tf.SymbolicTensor) : y;
}

/** Inputs at least this large get the small CNN's strided variant. */
export const SMALL_CNN_STEM_FROM = 48;

/**
 * Small CNN: 3×3 conv-BN-ReLU pairs with two 2×2 max-pools, so a 28 px input gives a 7×7 grid.
 * From 48 px the first conv has stride 2 and the second pair is one conv without the second pool: 64 px
 * gives a 16×16 grid of cells that each see 25 px. The plain stack at 64 px costs 4× more, and a cheaper
 * variant ending in an 8×8 grid of 45 px views learned the parts data as well (92%) but put its peaks
 * beside the parts (consistency 44%): a prototype can only point at a part if its cell sees little else.
 */
function smallCnn(input: tf.SymbolicTensor, seeds: Seeds): tf.SymbolicTensor {
  const side = Math.min(input.shape[1] ?? 0, input.shape[2] ?? 0);
  if (side >= SMALL_CNN_STEM_FROM) {
    let x = convBn(input, 32, 3, 2, seeds, 'c1', true);
    x = convBn(x, 32, 3, 1, seeds, 'c2', true);
    x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }).apply(x) as tf.SymbolicTensor;
    x = convBn(x, 64, 3, 1, seeds, 'c3', true);
    return convBn(x, 128, 3, 1, seeds, 'c5', true);
  }
  let x = convBn(input, 32, 3, 1, seeds, 'c1', true);
  x = convBn(x, 32, 3, 1, seeds, 'c2', true);
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }).apply(x) as tf.SymbolicTensor;
  x = convBn(x, 64, 3, 1, seeds, 'c3', true);
  x = convBn(x, 64, 3, 1, seeds, 'c4', true);
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }).apply(x) as tf.SymbolicTensor;
  return convBn(x, 128, 3, 1, seeds, 'c5', true);
}

function basicBlock(x: tf.SymbolicTensor, filters: number, stride: number, seeds: Seeds, name: string) {
  const inC = x.shape[3]!;
  let y = convBn(x, filters, 3, stride, seeds, `${name}a`, true, 'torch');
  y = convBn(y, filters, 3, 1, seeds, `${name}b`, false);
  const shortcut =
    stride !== 1 || inC !== filters ? convBn(x, filters, 1, stride, seeds, `${name}down`, false) : x;
  const sum = tf.layers.add({ name: `${name}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
  return tf.layers.reLU({ name: `${name}_out` }).apply(sum) as tf.SymbolicTensor;
}

function bottleneck(x: tf.SymbolicTensor, filters: number, stride: number, seeds: Seeds, name: string) {
  const inC = x.shape[3]!;
  const outC = filters * 4;
  let y = convBn(x, filters, 1, 1, seeds, `${name}a`, true);
  y = convBn(y, filters, 3, stride, seeds, `${name}b`, true, 'torch');
  y = convBn(y, outC, 1, 1, seeds, `${name}c`, false);
  const shortcut = stride !== 1 || inC !== outC ? convBn(x, outC, 1, stride, seeds, `${name}down`, false) : x;
  const sum = tf.layers.add({ name: `${name}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
  return tf.layers.reLU({ name: `${name}_out` }).apply(sum) as tf.SymbolicTensor;
}

export const RESNETS = ['resnet18', 'resnet34', 'resnet50'] as const;
export type ResnetName = (typeof RESNETS)[number];

/** Blocks per stage (torchvision's `layer1`…`layer4`) and the block kind. */
export const RESNET: Record<ResnetName, { blocks: readonly number[]; bottleneck: boolean }> = {
  resnet18: { blocks: [2, 2, 2, 2], bottleneck: false },
  resnet34: { blocks: [3, 4, 6, 3], bottleneck: false },
  resnet50: { blocks: [3, 4, 6, 3], bottleneck: true },
};

export const isResnet = (name: string): name is ResnetName => (RESNETS as readonly string[]).includes(name);

/**
 * ResNet (He et al. 2016; torchvision's v1.5: the stride sits on a bottleneck's 3×3) without its pooling and
 * classifier, laid out so that torchvision weights give torchvision's feature maps (`torchPad`): 224 px →
 * 7×7 grid. `stages` < 4 stops after that stage (torchvision `layer<stages>`): a finer grid for small images.
 */
function resnet(input: tf.SymbolicTensor, name: ResnetName, seeds: Seeds, stages: number): tf.SymbolicTensor {
  const { blocks, bottleneck: useBottleneck } = RESNET[name];
  let x = convBn(input, 64, 7, 2, seeds, 'stem', true, 'torch');
  // Zero padding is −∞ padding here: the pool reads a ReLU's output, which is never negative.
  x = tf.layers
    .maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'stem_pool' })
    .apply(torchPad(x, 3, 'stem_pool_pad')) as tf.SymbolicTensor;
  blocks.slice(0, stages).forEach((count, stage) => {
    const filters = 64 * 2 ** stage;
    for (let i = 0; i < count; i++) {
      const stride = i === 0 && stage > 0 ? 2 : 1;
      const blockName = resnetBlockName(stage, i);
      x = useBottleneck
        ? bottleneck(x, filters, stride, seeds, blockName)
        : basicBlock(x, filters, stride, seeds, blockName);
    }
  });
  return x;
}

/** Our name of torchvision's `layer<stage + 1>.<block>`: `s<stage + 1>b<block + 1>`. */
export const resnetBlockName = (stage: number, block: number) => `s${stage + 1}b${block + 1}`;

/** The early map the feature-alignment loss compares with: the small CNN's first pool, a ResNet's stem. */
export function shallowLayer(name: BackboneName | string): string | undefined {
  if (name === 'small-cnn') return 'pool1';
  return isResnet(name) ? 'stem_pool' : undefined;
}

export function buildBackbone(spec: BackboneSpec): tf.LayersModel {
  const seeds = new Seeds(spec.seed);
  const input = tf.input({ shape: spec.inputShape, name: 'image' });
  const features =
    spec.name === 'small-cnn' ? smallCnn(input, seeds) : resnet(input, spec.name, seeds, spec.stages ?? 4);
  return tf.model({ inputs: input, outputs: features, name: spec.name });
}

/**
 * A pretrained backbone: any layers model, cut at `layerName` (its output becomes the feature map).
 * The model must take NHWC images and produce a rank-4 output at that layer.
 */
export function cutAtLayer(model: tf.LayersModel, layerName: string): tf.LayersModel {
  const layer = model.layers.find((l) => l.name === layerName);
  if (!layer) {
    const names = model.layers.map((l) => l.name);
    throw new Error(
      `no layer "${layerName}" in model "${model.name}" (layers: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''})`,
    );
  }
  const output = layer.output as tf.SymbolicTensor;
  if (Array.isArray(output) || output.shape.length !== 4) {
    throw new Error(
      `layer "${layerName}" must output one rank-4 NHWC feature map, got shape [${String((output as tf.SymbolicTensor).shape)}]`,
    );
  }
  return tf.model({ inputs: model.inputs, outputs: output, name: `${model.name}@${layerName}` });
}
