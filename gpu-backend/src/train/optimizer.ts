// Adam per parameter group (own learning rate, L2 weight decay as torch.optim.Adam adds it), with state I/O.
import * as tf from '@tensorflow/tfjs';
import { encodeTensors, type NamedTensor } from '../io/weights-encoding';
import { ADAM_STEP } from '../kernels/native';
import { adamState, setLearningRate } from '../tfjs-internals';

export interface GroupSpec {
  name: string;
  variables: tf.Variable[];
  lr: number;
  weightDecay: number;
}

interface Group extends GroupSpec {
  adam: LeanAdam;
}

/**
 * tfjs's AdamOptimizer, with each variable's update in a tidy of its own and L2 weight decay added there.
 * tfjs updates every variable inside one tidy, so each variable's ~11 full-size temporaries live until the
 * last variable is done: for ResNet-18's 11M weights about 500 MB at the end of every step, the peak of the
 * whole training step (above the activations kept for the backward pass). The ops and their order are
 * tfjs's (adam_optimizer.ts, 4.22), so the results are the same to the bit.
 */
class LeanAdam extends tf.AdamOptimizer {
  weightDecay = 0;

  override applyGradients(
    variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[],
  ): void {
    const self = adamState(this);
    const names = Array.isArray(variableGradients)
      ? variableGradients.map((v) => v.name)
      : Object.keys(variableGradients);
    const [oneMinusAccBeta1, oneMinusAccBeta2] = tf.tidy(() => [
      tf.sub(1, self.accBeta1),
      tf.sub(1, self.accBeta2),
    ]);
    // With the native kernels, every variable's update is one kernel; its float32 constants are the scalars
    // tfjs's ops below would use (1 − β computed in double, then rounded, as tf.mul(x, 1 − β) does).
    const fused =
      tf.getKernel(ADAM_STEP, tf.getBackend()) !== undefined &&
      names.every((n) => tf.engine().registeredVariables[n]?.dtype === 'float32')
        ? [
            this.beta1,
            1 - this.beta1,
            this.beta2,
            1 - this.beta2,
            oneMinusAccBeta1.dataSync()[0]!,
            oneMinusAccBeta2.dataSync()[0]!,
            this.epsilon,
            -this.learningRate,
          ]
        : undefined;
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name]!;
      self.accumulatedFirstMoment[i] ??= {
        originalName: `${name}/m`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      self.accumulatedSecondMoment[i] ??= {
        originalName: `${name}/v`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      const raw = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
      if (raw == null) return;
      if (fused) {
        // The same step as below in one native pass (kernels/native/training-ops.ts), to the bit.
        const outs = tf.engine().runKernel(
          ADAM_STEP,
          {
            w: value,
            g: raw,
            m: self.accumulatedFirstMoment[i]!.variable,
            v: self.accumulatedSecondMoment[i]!.variable,
          },
          { constants: [...fused, this.weightDecay] },
        ) as unknown as tf.Tensor[];
        self.accumulatedFirstMoment[i]!.variable.assign(outs[1]!);
        self.accumulatedSecondMoment[i]!.variable.assign(outs[2]!);
        value.assign(outs[0]!);
        tf.dispose(outs);
        return;
      }
      tf.tidy(() => {
        const gradient = this.weightDecay > 0 ? tf.add(raw, tf.mul(value, this.weightDecay)) : raw;
        const firstMoment = self.accumulatedFirstMoment[i]!.variable;
        const secondMoment = self.accumulatedSecondMoment[i]!.variable;
        const newFirstMoment = tf.add(tf.mul(firstMoment, this.beta1), tf.mul(gradient, 1 - this.beta1));
        const newSecondMoment = tf.add(
          tf.mul(secondMoment, this.beta2),
          tf.mul(tf.square(gradient), 1 - this.beta2),
        );
        const biasCorrectedFirstMoment = tf.div(newFirstMoment, oneMinusAccBeta1);
        const biasCorrectedSecondMoment = tf.div(newSecondMoment, oneMinusAccBeta2);
        firstMoment.assign(newFirstMoment);
        secondMoment.assign(newSecondMoment);
        const newValue = tf.add(
          tf.mul(
            tf.div(biasCorrectedFirstMoment, tf.add(tf.sqrt(biasCorrectedSecondMoment), this.epsilon)),
            -this.learningRate,
          ),
          value,
        );
        value.assign(newValue);
      });
    });
    tf.dispose([oneMinusAccBeta1, oneMinusAccBeta2]);
    tf.tidy(() => {
      self.accBeta1.assign(tf.mul(self.accBeta1, this.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }
}

/**
 * Adam's running products β₁ᵗ and β₂ᵗ (for bias correction). tfjs leaves them out of getWeights and
 * recomputes them as pow(β, t + 1) on setWeights, which differs in the last float32 bits from the product
 * the steps accumulated: a resumed run drifted from an uninterrupted one. They are saved and restored.
 */
const PRODUCTS = ['accBeta1', 'accBeta2'] as const;

export class GroupedAdam {
  private readonly groups = new Map<string, Group>();

  constructor(specs: GroupSpec[]) {
    for (const s of specs) {
      // tf.train.adam's defaults: β₁ 0.9, β₂ 0.999, ε left to the backend (1e-7 in float32).
      const adam = new LeanAdam(s.lr, 0.9, 0.999);
      adam.weightDecay = s.weightDecay;
      this.groups.set(s.name, { ...s, adam });
    }
  }

  group(name: string): GroupSpec {
    const g = this.groups.get(name);
    if (!g) throw new Error(`no parameter group "${name}"`);
    return g;
  }

  setLearningRate(name: string, lr: number): void {
    const g = this.groups.get(name)!;
    g.lr = lr;
    setLearningRate(g.adam, lr);
  }

  /** Applies gradients (keyed by variable name) to the variables of the named groups only. */
  apply(grads: tf.NamedTensorMap, groupNames: readonly string[]): void {
    for (const name of groupNames) {
      const g = this.groups.get(name)!;
      const map: tf.NamedTensorMap = {};
      for (const v of g.variables) {
        const grad = grads[v.name];
        if (grad) map[v.name] = grad;
      }
      g.adam.applyGradients(map);
    }
  }

  /** Moments and step counts of every group, encoded (tf.io weight format) for exact resume. */
  async encodeState(): Promise<{ data: Uint8Array; specs: tf.io.WeightsManifestEntry[] }> {
    const named: NamedTensor[] = [];
    const fresh: tf.Tensor[] = [];
    for (const [name, g] of this.groups) {
      const weights = await g.adam.getWeights();
      weights.forEach((w, i) => {
        named.push({ name: `${name}/${i}`, tensor: w.tensor });
        if (i === 0) fresh.push(w.tensor); // the step count is a new scalar; the moments are Adam's own
      });
      for (const p of PRODUCTS) named.push({ name: `${name}#${p}`, tensor: adamState(g.adam)[p] });
    }
    try {
      return encodeTensors(named);
    } finally {
      tf.dispose(fresh);
    }
  }

  async decodeState(data: Uint8Array, specs: tf.io.WeightsManifestEntry[]): Promise<void> {
    const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
    const state = tf.io.decodeWeights(buf, specs);
    for (const [name, g] of this.groups) {
      const entries = Object.keys(state)
        .filter((k) => k.startsWith(`${name}/`))
        .sort((a, b) => Number(a.slice(name.length + 1)) - Number(b.slice(name.length + 1)))
        .map((k) => ({ name: k, tensor: state[k]! }));
      if (entries.length) await g.adam.setWeights(entries);
      // Checkpoints written before the products were saved fall back to tfjs's pow (not bit-exact).
      for (const p of PRODUCTS) {
        const saved = state[`${name}#${p}`];
        if (saved) adamState(g.adam)[p].assign(saved as tf.Scalar);
      }
    }
    // setWeights copies the moments into new variables and reads the step count; the decoded tensors go.
    tf.dispose(Object.values(state));
  }

  dispose(): void {
    for (const g of this.groups.values()) g.adam.dispose();
  }
}
