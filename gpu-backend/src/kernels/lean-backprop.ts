// Backpropagation that frees each intermediate gradient once its producer is done, as PyTorch's autograd does.
import * as tf from '@tensorflow/tfjs';
// tfjs-core's own tape walk helpers (not re-exported by @tensorflow/tfjs; pure functions over tape nodes).
import { getFilteredNodesXToY, type TapeNode } from '@tensorflow/tfjs-core/dist/tape.js';

/*
 * tfjs-core's Engine.gradients keeps every intermediate gradient (dL/d of each op's output) in one map
 * until the whole backward pass ends: for a ResNet-18 training step at batch 50, ~110 MB of gradients no
 * one will read again sit on the wasm heap at the end of the pass, beside the activations still needed.
 * Walking the tape in reverse, an output's gradient is complete once its producing node has run (every
 * consumer comes later on the tape), so it can go then. This is tfjs-core 4.22's `gradients` and
 * `backpropagateGradients` (engine.ts, tape.ts) with that one change; the checks below fail loudly if a
 * tfjs upgrade moves the internals it relies on.
 */

type GradientsFn = (
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients?: boolean,
) => { value: tf.Tensor; grads: tf.Tensor[] };

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  gradients: GradientsFn;
}

let stock: GradientsFn | undefined;

function backprop(map: Record<number, tf.Tensor>, tape: TapeNode[], keep: Set<number>): void {
  const engine = tf.engine();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    const dys = node.outputs.map((o) => map[o.id] ?? null) as tf.Tensor[];
    if (node.gradient == null) {
      throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    }
    const inputGradients = node.gradient(dys);
    const stored = new Set<tf.Tensor>();
    for (const inputName in node.inputs) {
      if (!(inputName in inputGradients)) {
        throw new Error(
          `Cannot backprop through input ${inputName}. Available gradients found: ${Object.keys(inputGradients)}.`,
        );
      }
      const dx = engine.tidy(() => inputGradients[inputName]!());
      const x = node.inputs[inputName]!;
      if (dx.dtype !== 'float32') {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input ${inputName} must have 'float32' dtype, but has '${dx.dtype}'`,
        );
      }
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input '${inputName}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
        );
      }
      const current = map[x.id];
      if (current == null) {
        map[x.id] = dx;
      } else {
        map[x.id] = tf.add(current, dx);
        current.dispose();
      }
      stored.add(map[x.id]!);
    }
    // The change: this node produced its outputs, so their gradients have no reader left. A gradient
    // function may hand dy through unchanged (the same tensor object): those stay.
    for (const o of node.outputs) {
      const dy = map[o.id];
      if (dy == null || keep.has(o.id) || stored.has(dy)) continue;
      delete map[o.id];
      dy.dispose();
    }
  }
}

/** Engine.gradients, freeing gradients as it goes (see above). */
function gradients(
  this: EngineInternals,
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients = false,
): { value: tf.Tensor; grads: tf.Tensor[] } {
  tf.util.assert(xs.length > 0, () => 'gradients() received an empty list of xs.');
  if (dy != null && dy.dtype !== 'float32')
    throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  const engine = tf.engine();
  const y = this.scopedRun(
    () => this.startTape(),
    () => this.endTape(),
    () => engine.tidy('forward', f),
  );
  tf.util.assert(y instanceof tf.Tensor, () => 'The result y returned by f() must be a tensor.');
  const filtered = getFilteredNodesXToY(this.state.activeTape!, xs, y);
  if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
    throw new Error(
      'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.',
    );
  }
  return engine.tidy('backward', () => {
    const map: Record<number, tf.Tensor> = {};
    map[y.id] = dy == null ? tf.ones(y.shape) : dy;
    backprop(map, filtered, new Set(xs.map((x) => x.id)));
    const grads = xs.map((x) => map[x.id]!);
    if (this.state.gradientDepth === 0) {
      for (const node of this.state.activeTape!) for (const t of node.saved ?? []) t.dispose();
      this.state.activeTape = null;
    }
    return { value: y, grads };
  }) as unknown as { value: tf.Tensor; grads: tf.Tensor[] };
}

/** Installs the leaner backpropagation on the global engine (idempotent). */
export function useLeanBackprop(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  for (const field of ['scopedRun', 'startTape', 'endTape'] as const) {
    if (typeof engine[field] !== 'function') {
      throw new Error(`tfjs changed: Engine.${field} is gone; lean-backprop.ts needs updating`);
    }
  }
  if (!('gradientDepth' in engine.state)) throw new Error('tfjs changed: engine.state.gradientDepth is gone');
  stock ??= engine.gradients;
  engine.gradients = gradients as unknown as GradientsFn;
}

/** Puts tfjs-core's own back (the tests compare both). */
export function useStockBackprop(): void {
  if (stock) (tf.engine() as unknown as EngineInternals).gradients = stock;
}
