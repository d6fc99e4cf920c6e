// One state-dict entry: its layout checked against the bytes the file really holds, its data read on demand.
//
// Every format ends here: a reader finds a tensor's dtype, layout and storage bytes (a zip entry, a run
// of a legacy file, a safetensors range), and `tensorEntry` refuses it at open time if the storage is too
// short ("storage holds N elements, the tensor needs M"), so `read()` only fails if the file changes.
import { MAX_READ_BYTES } from './checkpoint-file';
import { decodeToFloat32, ITEM_SIZE } from './decode';
import { checkLayout, gatherRowMajor, isRowMajor, type Layout, span } from './layout';
import { CheckpointError, type TensorEntry, type TorchDtype } from './state-dict';

/** A storage's bytes in the file. */
export interface StorageSource {
  /** Bytes the file holds for it (not what a header claims). */
  readonly bytes: number;
  /** `length` bytes from byte `start` of the storage, in a buffer of their own. */
  read(start: number, length: number): Promise<Uint8Array>;
}

/** The untrusted parts of a tensor: checked here, where the key is known for the message. */
export interface TensorSpec {
  readonly dtype: TorchDtype;
  readonly shape: unknown;
  readonly stride: unknown;
  readonly offset: unknown;
}

export function tensorEntry(
  file: string,
  key: string,
  spec: TensorSpec,
  storage: StorageSource,
): TensorEntry {
  const layout = checkLayout(spec.shape, spec.stride, spec.offset);
  if (typeof layout === 'string') throw new CheckpointError(file, layout, key);
  const item = ITEM_SIZE[spec.dtype];
  const run = span(layout);
  const needs = run === 0 ? 0 : layout.offset + run;
  const holds = Math.floor(storage.bytes / item);
  if (needs > holds) {
    throw new CheckpointError(file, `storage holds ${holds} elements, the tensor needs ${needs}`, key);
  }
  if (run * item > MAX_READ_BYTES) {
    throw new CheckpointError(
      file,
      `the tensor spans ${run * item} bytes: more than 2 GiB is not supported`,
      key,
    );
  }
  return {
    key,
    dtype: spec.dtype,
    shape: layout.shape,
    read: () => readTensor(file, key, spec.dtype, layout, run, storage),
  };
}

async function readTensor(
  file: string,
  key: string,
  dtype: TorchDtype,
  layout: Layout,
  run: number,
  storage: StorageSource,
): Promise<Float32Array> {
  if (run === 0) return new Float32Array(0);
  const item = ITEM_SIZE[dtype];
  let bytes: Uint8Array;
  try {
    bytes = await storage.read(layout.offset * item, run * item);
  } catch (err) {
    // Readers do not know which key a storage belongs to; the entry does.
    if (err instanceof CheckpointError && err.key === undefined)
      throw new CheckpointError(file, err.detail, key);
    throw err;
  }
  const values = decodeToFloat32(dtype, bytes);
  return isRowMajor(layout) ? values : gatherRowMajor(values, layout);
}
