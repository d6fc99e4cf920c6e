// Identity (every clone) as a shared reference: wasm's copies the data, ~600 times a training step.
import type * as tf from '@tensorflow/tfjs';
import { replacing } from '../replacement';

// Tensors are immutable (Variable.assign swaps the data id), so sharing the data with a reference count is
// what the cpu backend does too.
export const identity = replacing<tf.IdentityInputs>('Identity', (args, previous) => {
  const x = args.inputs.x!;
  if (x.dtype === 'string') return previous(args);
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
});
