// Worker thread of the data-parallel trainer: one replica, its gradients and its optimizer.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../../gpu-backend/src/engine';
import type { Batch, FromWorker, Replica, ReplicaFactory, ToWorker } from './protocol';

if (!parentPort) throw new Error('parallel/worker.ts must run in a worker thread');
const port = parentPort;

let replica: Replica | undefined;
let optimizer: tf.Optimizer | undefined;
let index = 0;
let sizes: number[] = [];
let offsets: number[] = [];
let total = 0;
let slots: Float32Array[] = [];

function send(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function toTensors(batch: Batch): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, t] of Object.entries(batch)) out[name] = tf.tensor(t.data, t.shape);
  return out;
}

/** Σ_k weights[k] · (replica k's gradient of variable i), read from the shared slots. */
function averaged(i: number, shape: number[], weights: number[]): tf.Tensor {
  return tf.tidy(() =>
    tf.addN(
      slots.map((s, k) =>
        tf.mul(tf.tensor(s.subarray(offsets[i]!, offsets[i]! + sizes[i]!), shape), weights[k]!),
      ),
    ),
  );
}

function need(): Replica {
  if (!replica) throw new Error('replica not initialised');
  return replica;
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'init': {
      index = msg.index;
      await initEngine(msg.spec.engine ?? 'wasm');
      const mod = (await import(msg.spec.module)) as Record<string, unknown>;
      const factory = mod[msg.spec.exportName] as ReplicaFactory | undefined;
      if (typeof factory !== 'function') {
        throw new Error(`${msg.spec.module} has no function export "${msg.spec.exportName}"`);
      }
      replica = await factory(msg.spec.options);
      optimizer = replica.optimizer ?? tf.train.adam(1e-3);
      sizes = replica.variables.map((v) => v.size);
      offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
      total = sizes.reduce((a, b) => a + b, 0);
      send({ type: 'ready', sizes, shapes: replica.variables.map((v) => v.shape) });
      return;
    }
    case 'shared':
      slots = Array.from(
        { length: msg.replicas },
        (_, k) => new Float32Array(msg.buffer, k * total * 4, total),
      );
      send({ type: 'ok' });
      return;
    case 'grads': {
      const r = need();
      const inputs = toTensors(msg.batch);
      const { value, grads } = tf.variableGrads(() => r.loss(inputs), r.variables);
      tf.dispose(inputs);
      const slot = slots[index]!;
      // Data leaves wasm memory once per variable, straight into this replica's shared slot.
      r.variables.forEach((v, i) => {
        const g = grads[v.name];
        if (g) slot.set(g.dataSync() as Float32Array, offsets[i]);
        else slot.fill(0, offsets[i], offsets[i]! + sizes[i]!);
      });
      const loss = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      send({ type: 'loss', loss });
      return;
    }
    case 'apply': {
      const r = need();
      const named = r.variables.map((v, i) => ({ name: v.name, tensor: averaged(i, v.shape, msg.weights) }));
      optimizer!.applyGradients(named);
      tf.dispose(named.map((n) => n.tensor));
      send({ type: 'ok' });
      return;
    }
    case 'average': {
      const values = new Float32Array(total);
      need().variables.forEach((v, i) => {
        const g = averaged(i, v.shape, msg.weights);
        values.set(g.dataSync() as Float32Array, offsets[i]);
        g.dispose();
      });
      send({ type: 'weights', values }, [values.buffer]);
      return;
    }
    case 'getWeights': {
      const values = new Float32Array(total);
      need().variables.forEach((v, i) => {
        values.set(v.dataSync() as Float32Array, offsets[i]);
      });
      send({ type: 'weights', values }, [values.buffer]);
      return;
    }
    case 'setWeights':
      need().variables.forEach((v, i) => {
        const t = tf.tensor(msg.values.subarray(offsets[i]!, offsets[i]! + sizes[i]!), v.shape);
        v.assign(t);
        t.dispose();
      });
      send({ type: 'ok' });
      return;
    case 'dispose':
      optimizer?.dispose();
      if (replica?.dispose) replica.dispose();
      else tf.dispose(replica?.variables ?? []);
      send({ type: 'ok' });
      port.close();
      return;
  }
}

// One message at a time, in order: the coordinator never has two requests in flight per worker.
let chain = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  chain = chain.then(() =>
    handle(msg).catch((err: unknown) =>
      send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    ),
  );
});
