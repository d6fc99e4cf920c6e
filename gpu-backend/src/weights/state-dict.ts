// A PyTorch state dict as read from a checkpoint file: names, shapes and lazily read float32 data.
//
// Readers (torch zip, legacy torch, safetensors) list every tensor with its shape first and read data only
// when asked, one tensor at a time, so a 100 MB ResNet-50 file is never held twice (file bytes + floats).

/** Element types a checkpoint may hold; every one is read as float32 (int64 counters become floats). */
export type TorchDtype =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export interface TensorEntry {
  /** The state-dict key after unwrapping (`module.` and `state_dict`/`model` wrappers removed). */
  readonly key: string;
  readonly dtype: TorchDtype;
  /** PyTorch's shape (NCHW for convolutions: [out, in, kh, kw]). */
  readonly shape: readonly number[];
  /** The values in row-major order of `shape` (strides applied), converted to float32. */
  read(): Promise<Float32Array>;
}

export interface StateDict {
  /** The file it came from, for error messages. */
  readonly file: string;
  readonly format: 'torch-zip' | 'torch-legacy' | 'safetensors';
  /** Entries in file order. */
  readonly entries: ReadonlyMap<string, TensorEntry>;
  /** Releases the file handle. */
  close(): Promise<void>;
}

/** A checkpoint that cannot be read: names the file and, where there is one, the key. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    readonly file: string,
    /** What is wrong, without the file and key (so a caller that learns the key can re-raise with it). */
    readonly detail: string,
    readonly key?: string,
  ) {
    super(`${file}: ${key === undefined ? '' : `key "${key}": `}${detail}`);
  }
}
