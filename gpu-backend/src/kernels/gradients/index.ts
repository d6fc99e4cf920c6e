// Our gradients: ones TF.js lacks, ones that keep less memory, and cheaper ones for wasm.
import * as tf from '@tensorflow/tfjs';
import { fusedBatchNormGrad } from './fused-batch-norm';
import { meanGrad } from './mean';
import { overrideGradients, restoreGradients } from './override';
import { reluGrad } from './relu';
import { topKGrad } from './top-k';

/** Gradients for every engine (TopK has none in TF.js; ReLU's from its output keeps one activation, not two). */
export const GRADIENTS: tf.GradConfig[] = [topKGrad, reluGrad];

/** Gradients that take over on wasm only (elsewhere tfjs-core's run). */
export const WASM_GRADIENTS = [fusedBatchNormGrad, meanGrad];

/** Installs every gradient here (idempotent; gradients are global, the wasm ones check the backend at use). */
export function registerGradients(): void {
  for (const g of GRADIENTS) tf.registerGradient(g);
  overrideGradients(WASM_GRADIENTS);
}

/** Puts tfjs-core's own back where the wasm ones took over (the benchmarks' baseline). */
export function restoreWasmGradients(): void {
  restoreGradients(WASM_GRADIENTS);
}
