// The ProtoPool head: prototype pool [M,D], slot logits [C,M,K], last layer [C,C·K], and its forward.
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_TAU, gumbelAssignment, INFERENCE_SCALE, softAssignment } from './assignment';
import { classIdentity } from './losses';
import { DEFAULT_EPS, focalSimilarity, poolDistances, squaredDistances } from './similarity';

export interface HeadConfig {
  classes: number;
  prototypes: number;
  slotsPerClass: number;
  depth: number;
  focal: 'reference' | 'paper';
  eps: number;
  tau: number;
}

export const HEAD_DEFAULTS = { focal: 'reference', eps: DEFAULT_EPS, tau: DEFAULT_TAU } as const;

export interface HeadOutput {
  /** [B,H,W,M] squared distances. */
  distances: tf.Tensor4D;
  minDistances: tf.Tensor2D;
  meanDistances: tf.Tensor2D;
  /** [B, C·K] focal similarity per slot. */
  focal: tf.Tensor2D;
  /** [B,C]. */
  logits: tf.Tensor2D;
}

/** How slots pick prototypes for one forward pass. */
export type AssignmentMode =
  | { kind: 'soft' } // plain softmax of the logits
  | { kind: 'gumbel'; scale: number; noise: tf.Tensor3D } // training
  | { kind: 'inference' }; // s = 1e4, no noise: deterministic and effectively one-hot

export class ProtoPoolHead {
  readonly identity: tf.Tensor2D;

  constructor(
    readonly config: HeadConfig,
    readonly prototypes: tf.Variable<tf.Rank.R2>,
    readonly slotLogits: tf.Variable<tf.Rank.R3>,
    readonly lastLayer: tf.Variable<tf.Rank.R2>,
  ) {
    this.identity = classIdentity(config.classes, config.slotsPerClass);
  }

  /** Fresh head: prototypes U[0,1), slot logits Xavier-normal (as torch's xavier_normal_ on [C,M,K]), W = identity. */
  static create(config: HeadConfig, seed: number): ProtoPoolHead {
    const { classes: c, prototypes: m, slotsPerClass: k, depth: d } = config;
    const std = Math.sqrt(2 / (m * k + c * k));
    // tf.variable copies its initial value, so the initial tensors are disposed right after.
    const init = [
      tf.randomUniform([m, d], 0, 1, 'float32', seed),
      tf.randomNormal([c, m, k], 0, std, 'float32', seed + 1),
      classIdentity(c, k),
    ] as const;
    const head = new ProtoPoolHead(
      config,
      tf.variable(init[0] as tf.Tensor2D, true),
      tf.variable(init[1] as tf.Tensor3D, true),
      tf.variable(init[2], true),
    );
    tf.dispose([...init]);
    return head;
  }

  get variables(): tf.Variable[] {
    return [this.prototypes, this.slotLogits, this.lastLayer];
  }

  assignment(mode: AssignmentMode): tf.Tensor3D {
    if (mode.kind === 'soft') return softAssignment(this.slotLogits);
    if (mode.kind === 'gumbel')
      return gumbelAssignment(this.slotLogits, mode.scale, mode.noise, this.config.tau);
    return gumbelAssignment(this.slotLogits, INFERENCE_SCALE, null, this.config.tau);
  }

  /** z: [B,H,W,D] latent patches (add-on output); q: [C,M,K] from `assignment`. */
  forward(z: tf.Tensor4D, q: tf.Tensor3D): HeadOutput {
    return tf.tidy(() => {
      const distances = squaredDistances(z, this.prototypes);
      const pooled = poolDistances(distances);
      const focal = focalSimilarity(this.config.focal, distances, pooled, q, this.config.eps);
      const logits = tf.matMul(focal, this.lastLayer, false, true) as tf.Tensor2D;
      return { distances, minDistances: pooled.min, meanDistances: pooled.mean, focal, logits };
    });
  }

  dispose(): void {
    tf.dispose([this.identity, ...this.variables]);
  }
}
