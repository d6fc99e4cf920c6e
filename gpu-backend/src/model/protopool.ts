// The ProtoPool network: features (backbone + add-on: 1×1 conv + sigmoid) feeding the prototype head.
import * as tf from '@tensorflow/tfjs';
import { trainableVariables } from '../tfjs-internals';
import { type BackboneName, buildBackbone } from './backbones';
import { foldBatchNorm } from './fold-batch-norm';
import { type AssignmentMode, type HeadConfig, type HeadOutput, ProtoPoolHead } from './head';
import { similarity, squaredDistances } from './similarity';

export const ADDON_LAYER = 'addon_conv';

export interface ModelConfig extends HeadConfig {
  backbone: BackboneName | string;
  inputShape: [number, number, number];
  seed: number;
}

export interface ForwardResult extends HeadOutput {
  /** [C,M,K] the assignment used. */
  q: tf.Tensor3D;
}

/** Appends the add-on to a backbone: z = sigmoid(conv1×1(f) + b), so latents live in [0,1]^D. */
export function withAddOn(backbone: tf.LayersModel, depth: number, seed: number): tf.LayersModel {
  const f = backbone.outputs[0]!;
  const z = tf.layers
    .conv2d({
      filters: depth,
      kernelSize: 1,
      activation: 'sigmoid',
      kernelInitializer: tf.initializers.heNormal({ seed: seed * 1000 + 999 }),
      name: ADDON_LAYER,
    })
    .apply(f) as tf.SymbolicTensor;
  return tf.model({ inputs: backbone.inputs, outputs: z, name: 'features' });
}

export class ProtoPoolModel {
  constructor(
    readonly config: ModelConfig,
    /** image → z [B,H,W,D]. */
    readonly features: tf.LayersModel,
    readonly head: ProtoPoolHead,
  ) {}

  static create(config: ModelConfig, backbone?: tf.LayersModel): ProtoPoolModel {
    const trunk =
      backbone ??
      buildBackbone({
        name: config.backbone as BackboneName,
        inputShape: config.inputShape,
        seed: config.seed,
      });
    return new ProtoPoolModel(
      config,
      withAddOn(trunk, config.depth, config.seed),
      ProtoPoolHead.create(config, config.seed + 7),
    );
  }

  /** The feature grid H×W the prototypes see. */
  get grid(): [number, number] {
    const shape = this.features.outputs[0]!.shape;
    return [shape[1]!, shape[2]!];
  }

  get backboneVariables(): tf.Variable[] {
    return this.features.layers.filter((l) => l.name !== ADDON_LAYER).flatMap((l) => trainableVariables(l));
  }

  get addOnVariables(): tf.Variable[] {
    return trainableVariables(this.features.getLayer(ADDON_LAYER));
  }

  /** `features` with batch norm folded into the convolutions, once `freeze` has made it. */
  private frozen?: tf.LayersModel;

  /**
   * For a model that is done training (serving, explanations): inference from here on runs through a copy
   * with batch norm folded into the convolutions (model/fold-batch-norm.ts), fewer kernels and passes over
   * memory. Inference results then agree with the unfrozen model to float32 rounding, not to the bit, and
   * no longer follow changes to the weights. Training (`forward` with `training`) still uses `features`.
   */
  async freeze(): Promise<{ batchNorms: number; relus: number }> {
    if (this.frozen) this.frozen.dispose();
    const { model, folded } = await foldBatchNorm(this.features);
    this.frozen = model;
    return folded;
  }

  /** The layers inference runs through. */
  private get inferenceFeatures(): tf.LayersModel {
    return this.frozen ?? this.features;
  }

  /** Inference latents z: [B,H,W,D] for normalised images x (batch norm in its running-average mode). */
  latents(x: tf.Tensor4D): tf.Tensor4D {
    return this.inferenceFeatures.apply(x, { training: false }) as tf.Tensor4D;
  }

  /**
   * [B,H,W,M] similarity maps at inference: sim(‖z − p‖²) of every cell's latent to every prototype, the
   * maps explanations draw and the interpretability metrics read (`mapOf` picks one out of the flat data).
   */
  similarityMaps(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() =>
      similarity(squaredDistances(this.latents(x), this.head.prototypes), this.config.eps),
    );
  }

  /** The inference forward and its similarity maps (as `similarityMaps`) from one pass. */
  forwardWithMaps(x: tf.Tensor4D): ForwardResult & { maps: tf.Tensor4D } {
    return tf.tidy(() => {
      const r = this.forward(x, { kind: 'inference' }, false);
      return { ...r, maps: similarity(r.distances, this.config.eps) };
    });
  }

  /** x: [B,H,W,C] normalised images. `training` puts batch norm in batch-statistics mode (and updates its averages). */
  forward(x: tf.Tensor4D, mode: AssignmentMode, training: boolean): ForwardResult {
    return tf.tidy(() => {
      const z = (training ? this.features : this.inferenceFeatures).apply(x, { training }) as tf.Tensor4D;
      const q = this.head.assignment(mode);
      return { ...this.head.forward(z, q), q };
    });
  }

  /** The backbone alone (the add-on's input), with the map at a layer too when one is named; built once each. */
  private backbones = new Map<string, tf.LayersModel>();

  /**
   * The backbone's output f (the add-on's input) and, when `layer` is named, the map there. For a frozen
   * backbone: run before the gradient tape, its ops record nothing and save nothing for a backward pass no
   * gradient takes (TF.js clones every saved tensor; in a ResNet-18 warm-up step ~540 clones). Same ops, same
   * values as inside `forward`.
   */
  backboneFeatures(
    x: tf.Tensor4D,
    training: boolean,
    layer?: string,
  ): { f: tf.Tensor4D; shallow?: tf.Tensor4D } {
    const key = layer ?? '';
    let net = this.backbones.get(key);
    if (!net) {
      const f = this.features.getLayer(ADDON_LAYER).input as tf.SymbolicTensor;
      const outputs = layer ? [this.features.getLayer(layer).output as tf.SymbolicTensor, f] : [f];
      // Shares every layer (and so every weight) with `features`: training one trains the other.
      net = tf.model({ inputs: this.features.inputs, outputs });
      this.backbones.set(key, net);
    }
    const model = net;
    return tf.tidy(() => {
      const out = model.apply(x, { training });
      if (!layer) return { f: out as tf.Tensor4D };
      const [shallow, f] = out as [tf.Tensor4D, tf.Tensor4D];
      return { f, shallow };
    });
  }

  /** `forward` from the backbone's output (`backboneFeatures`): the add-on, the assignment, the head. */
  forwardFromBackbone(
    f: tf.Tensor4D,
    mode: AssignmentMode,
    training: boolean,
  ): ForwardResult & { z: tf.Tensor4D } {
    return tf.tidy(() => {
      const z = this.features.getLayer(ADDON_LAYER).apply(f, { training }) as tf.Tensor4D;
      const q = this.head.assignment(mode);
      return { ...this.head.forward(z, q), q, z };
    });
  }

  /** `forward`, plus the map at backbone layer `layer` and the latents z, for the feature-alignment loss. */
  forwardWithShallow(
    x: tf.Tensor4D,
    mode: AssignmentMode,
    training: boolean,
    layer: string,
  ): ForwardResult & { shallow: tf.Tensor4D; z: tf.Tensor4D } {
    return tf.tidy(() => {
      const { f, shallow } = this.backboneFeatures(x, training, layer);
      return { ...this.forwardFromBackbone(f, mode, training), shallow: shallow! };
    });
  }

  dispose(): void {
    // The backbone twins own no weights of their own; disposing `features` frees them.
    this.backbones.clear();
    this.frozen?.dispose();
    this.features.dispose();
    this.head.dispose();
  }
}
