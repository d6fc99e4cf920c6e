// tf.io's weight encoding, written into one buffer sized up front and filled one tensor at a time.
import type * as tf from '@tensorflow/tfjs';

/*
 * Why not `tf.io.encodeWeights`: it reads every tensor at once and then concatenates the copies, so saving
 * holds the weights twice beside the live ones; a checkpoint (model, and Adam's two moments per weight)
 * raised a ResNet-18 run's peak memory by ~280 MB over its training steps. Here the output is allocated
 * once and each tensor is read, copied in and dropped in turn. The bytes and specs are tf.io's own
 * (raw little-endian values in order, `{ name, shape, dtype }`), so tf.io decodes them as ever.
 */

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export interface EncodedWeights {
  data: Uint8Array;
  specs: tf.io.WeightsManifestEntry[];
}

const BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };

export function encodeTensors(named: readonly NamedTensor[]): EncodedWeights {
  const bytesOf = ({ name, tensor }: NamedTensor) => {
    const per = BYTES[tensor.dtype];
    if (per === undefined) throw new Error(`cannot encode weight "${name}": dtype ${tensor.dtype}`);
    return tensor.size * per;
  };
  const data = new Uint8Array(named.reduce((n, t) => n + bytesOf(t), 0));
  const specs: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const entry of named) {
    const values = entry.tensor.dataSync();
    const bytes =
      entry.tensor.dtype === 'bool'
        ? Uint8Array.from(values as Uint8Array) // bool reads back as one value per byte
        : new Uint8Array(values.buffer, values.byteOffset, bytesOf(entry));
    data.set(bytes, offset);
    offset += bytes.byteLength;
    specs.push({ name: entry.name, shape: entry.tensor.shape, dtype: entry.tensor.dtype as 'float32' });
  }
  return { data, specs };
}

/** A layers model's weights as `model.save` names and orders them (`getNamedWeights`). */
export function layersWeights(model: tf.LayersModel): NamedTensor[] {
  return model.weights.map((w) => ({ name: w.originalName, tensor: w.read() }));
}
