// Accuracy and loss of a model on a split, with the deterministic (inference) assignment.
import * as tf from '@tensorflow/tfjs';
import { epochBatches, type Split } from '../data/dataset';
import { readAhead } from '../data/streaming';
import { hardAssignment } from '../model/assignment';
import { crossEntropy } from '../model/losses';
import type { ProtoPoolModel } from '../model/protopool';

export interface EvalResult {
  accuracy: number;
  loss: number;
  examples: number;
  /** Distinct prototypes the hard slot map uses (ProtoPool's global compactness). */
  prototypesUsed: number;
}

export function prototypesInUse(model: ProtoPoolModel): number[] {
  return [...new Set(hardAssignment(model.head.slotLogits).flat())].sort((a, b) => a - b);
}

export async function evaluate(model: ProtoPoolModel, split: Split, batchSize = 128): Promise<EvalResult> {
  let correct = 0;
  let lossSum = 0;
  let n = 0;
  for await (const batch of readAhead(split, epochBatches(split.size, batchSize), { depth: 1 })) {
    if (batch.labels.length === 0) continue; // all skipped as corrupt
    const [c, l] = tf.tidy(() => {
      const x = tf.tensor4d(batch.x, batch.shape);
      const y = tf.tensor1d(batch.labels, 'int32');
      const { logits } = model.forward(x, { kind: 'inference' }, false);
      const right = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32'));
      return [right, crossEntropy(logits, y, undefined, 'sum')];
    });
    correct += (await c.data())[0]!;
    lossSum += (await l.data())[0]!;
    tf.dispose([c, l]);
    n += batch.labels.length;
  }
  return {
    accuracy: n ? correct / n : 0,
    loss: n ? lossSum / n : 0,
    examples: n,
    prototypesUsed: prototypesInUse(model).length,
  };
}
