// Types shared by the data-parallel coordinator and its worker threads.
import type * as tf from '@tensorflow/tfjs';

/** One named input of a batch as plain data: split along axis 0 across replicas. */
export interface BatchTensor {
  data: Float32Array | Int32Array;
  shape: number[];
}
export type Batch = Record<string, BatchTensor>;

/**
 * What a replica factory returns. `loss` must be a mean over the batch rows (so that averaging the
 * replicas' gradients, weighted by their row counts, gives the full-batch gradient); it may update
 * non-trainable state such as batch-norm moving statistics, which stays per replica.
 */
export interface Replica {
  variables: tf.Variable[];
  loss(batch: Record<string, tf.Tensor>): tf.Scalar;
  /** Applied to the averaged gradients in every replica; default tf.train.adam(1e-3). */
  optimizer?: tf.Optimizer;
  /** Frees everything the replica holds (e.g. model.dispose()); default disposes `variables`. */
  dispose?: () => void;
}

/** Builds a replica inside a worker; `options` is whatever the caller passed (structured-clonable). */
export type ReplicaFactory = (options: unknown) => Replica | Promise<Replica>;

export interface ReplicaSpec {
  /** Absolute path or file URL of the module exporting the factory. */
  module: string;
  /** Name of the factory export. */
  exportName: string;
  options?: unknown;
  /** TF.js engine for the workers (see initEngine); default 'wasm'. */
  engine?: string;
}

export type ToWorker =
  | { type: 'init'; spec: ReplicaSpec; index: number }
  | { type: 'shared'; buffer: SharedArrayBuffer; replicas: number }
  | { type: 'grads'; batch: Batch }
  | { type: 'apply'; weights: number[] }
  | { type: 'average'; weights: number[] }
  | { type: 'getWeights' }
  | { type: 'setWeights'; values: Float32Array }
  | { type: 'dispose' };

export type FromWorker =
  | { type: 'ready'; sizes: number[]; shapes: number[][] }
  | { type: 'ok' }
  | { type: 'loss'; loss: number }
  | { type: 'weights'; values: Float32Array }
  | { type: 'error'; message: string };
