// Adam per parameter group (own learning rate, L2 weight decay as torch.optim.Adam adds it), with state I/O.
import * as tf from '@tensorflow/tfjs';

export interface GroupSpec {
  name: string;
  variables: tf.Variable[];
  lr: number;
  weightDecay: number;
}

interface Group extends GroupSpec {
  adam: tf.AdamOptimizer;
}

/**
 * Adam's running products β₁ᵗ and β₂ᵗ (for bias correction). tfjs leaves them out of getWeights and
 * recomputes them as pow(β, t + 1) on setWeights, which differs in the last float32 bits from the product
 * the steps accumulated: a resumed run drifted from an uninterrupted one. They are saved and restored.
 */
type AdamProducts = { accBeta1: tf.Variable; accBeta2: tf.Variable };
const products = (adam: tf.AdamOptimizer) => adam as unknown as AdamProducts;
const PRODUCTS = ['accBeta1', 'accBeta2'] as const;

export class GroupedAdam {
  private readonly groups = new Map<string, Group>();

  constructor(specs: GroupSpec[]) {
    for (const s of specs) this.groups.set(s.name, { ...s, adam: tf.train.adam(s.lr) });
  }

  group(name: string): GroupSpec {
    const g = this.groups.get(name);
    if (!g) throw new Error(`no parameter group "${name}"`);
    return g;
  }

  setLearningRate(name: string, lr: number): void {
    const g = this.groups.get(name)!;
    g.lr = lr;
    // AdamOptimizer reads this field on every step; tfjs keeps it protected but mutable.
    (g.adam as unknown as { learningRate: number }).learningRate = lr;
  }

  /** Applies gradients (keyed by variable name) to the variables of the named groups only. */
  apply(grads: tf.NamedTensorMap, groupNames: readonly string[]): void {
    for (const name of groupNames) {
      const g = this.groups.get(name)!;
      const map: tf.NamedTensorMap = {};
      const temps: tf.Tensor[] = [];
      for (const v of g.variables) {
        const grad = grads[v.name];
        if (!grad) continue;
        if (g.weightDecay > 0) {
          const decayed = tf.tidy(() => tf.add(grad, tf.mul(v, g.weightDecay)));
          temps.push(decayed);
          map[v.name] = decayed;
        } else {
          map[v.name] = grad;
        }
      }
      g.adam.applyGradients(map as Parameters<tf.AdamOptimizer['applyGradients']>[0]);
      tf.dispose(temps);
    }
  }

  /** Moments and step counts of every group, encoded (tf.io weight format) for exact resume. */
  async encodeState(): Promise<{ data: Uint8Array; specs: tf.io.WeightsManifestEntry[] }> {
    const named: tf.NamedTensorMap = {};
    const fresh: tf.Tensor[] = [];
    for (const [name, g] of this.groups) {
      const weights = await g.adam.getWeights();
      weights.forEach((w, i) => {
        named[`${name}/${i}`] = w.tensor;
        if (i === 0) fresh.push(w.tensor); // the step count is a new scalar; the moments are Adam's own
      });
      for (const p of PRODUCTS) named[`${name}#${p}`] = products(g.adam)[p];
    }
    const { data, specs } = await tf.io.encodeWeights(named);
    tf.dispose(fresh);
    return { data: new Uint8Array(data), specs };
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
        if (saved) products(g.adam)[p].assign(saved as tf.Scalar);
      }
    }
    // setWeights copies the moments into new variables and reads the step count; the decoded tensors go.
    tf.dispose(Object.values(state));
  }

  dispose(): void {
    for (const g of this.groups.values()) g.adam.dispose();
  }
}
