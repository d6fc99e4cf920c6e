// A gradient that takes over from tfjs-core's on the wasm backend only, and calls tfjs-core's elsewhere.
import * as tf from '@tensorflow/tfjs';

type GradFunc = tf.GradConfig['gradFunc'];

export interface GradOverride {
  kernelName: string;
  inputsToSave: string[];
  /** `stock` is tfjs-core's own gradient, for the cases this one leaves to it. */
  gradFunc: (...args: [...Parameters<GradFunc>, stock: GradFunc]) => ReturnType<GradFunc>;
}

const stockOf = new Map<string, GradFunc>();

/** Installs `overrides` (idempotent: tfjs-core's gradient is remembered the first time). */
export function overrideGradients(overrides: readonly GradOverride[]): void {
  for (const o of overrides) {
    if (!stockOf.has(o.kernelName)) {
      const g = tf.getGradient(o.kernelName);
      if (!g) throw new Error(`no gradient registered for ${o.kernelName}`);
      stockOf.set(o.kernelName, g.gradFunc);
    }
    const stock = stockOf.get(o.kernelName)!;
    tf.registerGradient({
      kernelName: o.kernelName,
      inputsToSave: o.inputsToSave,
      gradFunc: (dy, saved, attrs) =>
        tf.getBackend() === 'wasm' ? o.gradFunc(dy, saved, attrs, stock) : stock(dy, saved, attrs),
    });
  }
}

/** Puts tfjs-core's gradients back (the benchmarks' baseline). */
export function restoreGradients(overrides: readonly GradOverride[]): void {
  for (const o of overrides) {
    const stock = stockOf.get(o.kernelName);
    if (stock)
      tf.registerGradient({ kernelName: o.kernelName, inputsToSave: o.inputsToSave, gradFunc: stock });
  }
}
