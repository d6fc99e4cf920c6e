// A kernel that takes over from a backend's own for the cases it does better, and hands it the rest.
import * as tf from '@tensorflow/tfjs';

export type KernelFunc = tf.KernelConfig['kernelFunc'];
export type KernelArgs = Parameters<KernelFunc>[0];
type Result = tf.TensorInfo | tf.TensorInfo[];

/** A kernel's arguments with tfjs-core's types for its inputs and attributes. */
export interface TypedArgs<Inputs, Attrs> {
  inputs: Inputs;
  attrs: Attrs;
  backend: tf.KernelBackend;
}

/** A kernel for `kernelName` that gets the kernel it replaced as `previous` (its fallback). */
export interface KernelReplacement {
  kernelName: string;
  kernelFunc: (args: KernelArgs, previous: KernelFunc) => Result;
}

/**
 * A replacement typed with tfjs-core's own inputs and attributes for the kernel (`tf.TileInputs`,
 * `tf.TileAttrs`, …), as tfjs's backends type theirs; the one cast from the engine's untyped maps is here.
 */
export function replacing<Inputs, Attrs = Record<string, never>>(
  kernelName: string,
  kernelFunc: (
    args: TypedArgs<Inputs, Attrs>,
    previous: (args: TypedArgs<Inputs, Attrs>) => Result,
  ) => Result,
): KernelReplacement {
  return { kernelName, kernelFunc: kernelFunc as unknown as KernelReplacement['kernelFunc'] };
}

/** A kernel of our own (one the backend lacks or one replaced outright), typed the same way. */
export function kernel<Inputs, Attrs = Record<string, never>>(
  kernelName: string,
  kernelFunc: (args: TypedArgs<Inputs, Attrs>) => Result,
): Omit<tf.KernelConfig, 'backendName'> {
  return { kernelName, kernelFunc: kernelFunc as unknown as KernelFunc };
}

/** Per layer ('wasm', 'native', …) and kernel/backend: the kernel function a replacement took over from. */
const previousOf = new Map<string, KernelFunc>();
/** The functions `replaceKernels` registered, and their layer. */
const layerOf = new WeakMap<KernelFunc, string>();

/** The layer whose replacement `backendName` runs for `kernelName` now, if any (tests check the registry). */
export function replacedBy(kernelName: string, backendName: string): string | undefined {
  const current = tf.getKernel(kernelName, backendName);
  return current ? layerOf.get(current.kernelFunc) : undefined;
}

/**
 * Installs `list` over whatever `backendName` runs now, as layer `layer`. Layers stack (the native kernels
 * go over wasm's faster ones, whose kernels they fall back to); installing a layer again first removes it.
 */
export function replaceKernels(layer: string, list: readonly KernelReplacement[], backendName: string): void {
  restoreKernels(
    layer,
    list.map((r) => r.kernelName),
    backendName,
  );
  for (const r of list) {
    const current = tf.getKernel(r.kernelName, backendName);
    if (!current) throw new Error(`no ${r.kernelName} kernel on ${backendName} to replace`);
    const previous = current.kernelFunc;
    previousOf.set(`${layer}:${r.kernelName}/${backendName}`, previous);
    tf.unregisterKernel(r.kernelName, backendName);
    const kernelFunc: KernelFunc = (args) => r.kernelFunc(args, previous);
    layerOf.set(kernelFunc, layer);
    tf.registerKernel({ kernelName: r.kernelName, backendName, kernelFunc });
  }
}

/** Puts back what layer `layer` replaced (benchmarks and tests compare both). */
export function restoreKernels(layer: string, kernelNames: readonly string[], backendName: string): void {
  for (const kernelName of kernelNames) {
    const key = `${layer}:${kernelName}/${backendName}`;
    const previous = previousOf.get(key);
    if (!previous) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc: previous });
    previousOf.delete(key);
  }
}

/** Registers kernels of our own, replacing any the backend has under the same name. */
export function registerOwnKernels(
  list: readonly Omit<tf.KernelConfig, 'backendName'>[],
  backendName: string,
): void {
  for (const k of list) {
    if (tf.getKernel(k.kernelName, backendName)) tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel({ ...k, backendName });
  }
}
