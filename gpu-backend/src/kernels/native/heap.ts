// Native kernels' plumbing: outputs allocated on the wasm heap, typed-array views of it for the addon.
import type * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelReplacement } from '../replacement';

/*
 * The addon reads and writes the wasm heap in place through typed-array views, so a native kernel copies
 * no activation. Views are taken after the outputs are allocated, because allocating may grow the heap and
 * detach earlier views.
 */

export type { KernelArgs, KernelFunc } from '../replacement';
/** A replacement for one of wasm's kernels: handles what it can and hands the rest to `fallback`. */
export type Replacement = KernelReplacement['kernelFunc'];
export type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
export type Pair = number | [number, number];

export const allFloat = (...ts: (tf.TensorInfo | undefined)[]) =>
  ts.every((t) => !t || t.dtype === 'float32');
export const size = (t: tf.TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

export type View = (t: tf.TensorInfo) => Float32Array;
/** Allocates the outputs, runs `fill` on heap views, and frees the outputs if the addon throws. */
export function produceAll(
  backend: BackendWasm,
  shapes: number[][],
  fill: (view: View, outs: Float32Array[]) => void,
): tf.TensorInfo[] {
  const outs = shapes.map((shape) => backend.makeOutput(shape, 'float32'));
  try {
    const view: View = (t) => backend.typedArrayFromHeap(t) as Float32Array;
    fill(view, outs.map(view));
  } catch (err) {
    for (const out of outs) backend.disposeData(out.dataId);
    throw err;
  }
  return outs;
}

export function produce(
  backend: BackendWasm,
  shape: number[],
  fill: (view: View, out: Float32Array) => void,
): tf.TensorInfo {
  return produceAll(backend, [shape], (view, [out]) => fill(view, out!))[0]!;
}
