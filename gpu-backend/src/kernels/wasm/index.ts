// The wasm backend's kernels of ours: the ones it lacks or runs slowly, built from kernels it runs fast.
import { registerOwnKernels, replaceKernels, restoreKernels } from '../replacement';
import { batchMatMul } from './batch-mat-mul';
import { comparisons } from './comparisons';
import { conv2dBackpropFilter } from './conv2d-backprop-filter';
import { conv2dBackpropInput } from './conv2d-backprop-input';
import { fusedBatchNorm } from './fused-batch-norm';
import { identity } from './identity';
import { maxPoolGrad } from './max-pool-grad';
import { mean } from './mean';
import { square } from './square';
import { sum } from './sum';
import { tile } from './tile';
import { unsortedSegmentSum } from './unsorted-segment-sum';

/*
 * Kernel functions may call ops: the engine stops recording gradients while a kernel runs, and tidy keeps
 * only the result. Each file says what it measured against wasm's own kernel.
 */

/** Kernels wasm lacks (UnsortedSegmentSum, Conv2DBackpropFilter) or whose own is replaced outright. */
export const WASM_OWN_KERNELS = [conv2dBackpropFilter, conv2dBackpropInput, unsortedSegmentSum];

/** Faster versions of wasm's kernels for the cases they handle; the rest goes to wasm's own. */
export const WASM_REPLACEMENTS = [
  tile,
  sum,
  mean,
  batchMatMul,
  maxPoolGrad,
  fusedBatchNorm,
  square,
  identity,
  ...comparisons,
];

const LAYER = 'wasm';

/** Installs this folder's kernels on `backendName` (idempotent). */
export function registerWasmKernels(backendName = 'wasm'): void {
  registerOwnKernels(WASM_OWN_KERNELS, backendName);
  replaceKernels(LAYER, WASM_REPLACEMENTS, backendName);
}

/** Puts wasm's own kernels back where this folder replaced them (the benchmarks' baseline). */
export function restoreWasmKernels(backendName = 'wasm'): void {
  restoreKernels(
    LAYER,
    WASM_REPLACEMENTS.map((r) => r.kernelName),
    backendName,
  );
}
