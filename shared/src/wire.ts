// The tensor wire format: a binary frame (application/x-protopool-tensor) and its JSON twin.
//
// Frame v1, all integers little-endian:
//   0  magic  "PPTF" (4 bytes)        6  rank   u8 (0..limits.maxRank)
//   4  version u8 = 1                  7  flags  u8 = 0 (reserved)
//   5  dtype  u8 (1 f32, 2 i32, 3 u8)  8  dims   u32 × rank, then the data, exactly Π dims × itemsize bytes
// The header is 8 + 4·rank bytes, so the data starts 4-byte aligned within the frame.
import { z } from 'zod';
import { decodeBase64, encodeBase64 } from './base64';

export const TENSOR_MEDIA_TYPE = 'application/x-protopool-tensor';
export const WIRE_MAGIC = [0x50, 0x50, 0x54, 0x46] as const; // "PPTF"
export const WIRE_VERSION = 1;

export const DType = z.enum(['float32', 'int32', 'uint8']);
export type DType = z.infer<typeof DType>;

const DTYPE_CODE: Record<DType, number> = { float32: 1, int32: 2, uint8: 3 };
const CODE_DTYPE: Record<number, DType> = { 1: 'float32', 2: 'int32', 3: 'uint8' };
const ITEM_SIZE: Record<DType, number> = { float32: 4, int32: 4, uint8: 1 };

export interface WireLimits {
  maxRank: number;
  maxDim: number;
  maxElements: number;
  /** NaN and ±Inf are refused unless this is set: no model input or output needs them. */
  allowNonFinite: boolean;
}

export const DEFAULT_LIMITS: WireLimits = {
  maxRank: 6,
  maxDim: 65_536,
  maxElements: 16 * 1024 * 1024,
  allowNonFinite: false,
};

type Arrays = { float32: Float32Array; int32: Int32Array; uint8: Uint8Array };
export type WireTensor = { [D in DType]: { dtype: D; shape: number[]; data: Arrays[D] } }[DType];

export type TensorFormatErrorCode =
  | 'truncated'
  | 'bad_magic'
  | 'unsupported_version'
  | 'unknown_dtype'
  | 'bad_flags'
  | 'rank_limit'
  | 'dim_limit'
  | 'size_limit'
  | 'length_mismatch'
  | 'non_finite'
  | 'bad_json'
  | 'wrong_input';

export class TensorFormatError extends Error {
  constructor(
    readonly code: TensorFormatErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TensorFormatError';
  }
}

export const TensorJson = z.object({
  dtype: DType,
  shape: z.array(z.number().int().min(1)).max(DEFAULT_LIMITS.maxRank),
  data: z.string(),
});
export type TensorJson = z.infer<typeof TensorJson>;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function tensor<D extends DType>(dtype: D, shape: number[], data: Arrays[D]): WireTensor {
  const t = { dtype, shape, data } as WireTensor;
  checkShape(shape, {
    ...DEFAULT_LIMITS,
    maxDim: Number.MAX_SAFE_INTEGER,
    maxElements: Number.MAX_SAFE_INTEGER,
  });
  if (data.length !== elementCount(shape)) {
    throw new TensorFormatError(
      'length_mismatch',
      `shape [${shape.join(', ')}] holds ${elementCount(shape)} elements but data has ${data.length}`,
    );
  }
  return t;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Little-endian bytes of the tensor's data (a copy). */
export function dataBytes(t: WireTensor): Uint8Array {
  const src = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (LITTLE_ENDIAN || t.dtype === 'uint8') return src.slice();
  const out = new Uint8Array(t.data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < t.data.length; i++) {
    if (t.dtype === 'float32') view.setFloat32(i * 4, t.data[i]!, true);
    else view.setInt32(i * 4, t.data[i]!, true);
  }
  return out;
}

export function encodeFrame(t: WireTensor): Uint8Array {
  const rank = t.shape.length;
  const header = 8 + 4 * rank;
  const out = new Uint8Array(header + t.data.byteLength);
  out.set(WIRE_MAGIC, 0);
  out[4] = WIRE_VERSION;
  out[5] = DTYPE_CODE[t.dtype];
  out[6] = rank;
  out[7] = 0;
  const view = new DataView(out.buffer);
  t.shape.forEach((d, i) => {
    view.setUint32(8 + 4 * i, d, true);
  });
  out.set(dataBytes(t), header);
  return out;
}

export function decodeFrame(bytes: Uint8Array, limits: Partial<WireLimits> = {}): WireTensor {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (bytes.length < 8) {
    throw new TensorFormatError(
      'truncated',
      `tensor frame truncated: ${bytes.length} bytes, the header alone is 8`,
    );
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== WIRE_MAGIC[i]) {
      throw new TensorFormatError('bad_magic', 'not a tensor frame: the first 4 bytes must be "PPTF"');
    }
  }
  if (bytes[4] !== WIRE_VERSION) {
    throw new TensorFormatError(
      'unsupported_version',
      `tensor frame version ${bytes[4]} is not supported (expected ${WIRE_VERSION})`,
    );
  }
  const dtype = CODE_DTYPE[bytes[5]!];
  if (!dtype) {
    throw new TensorFormatError(
      'unknown_dtype',
      `unknown dtype code ${bytes[5]} (1 float32, 2 int32, 3 uint8)`,
    );
  }
  if (bytes[7] !== 0)
    throw new TensorFormatError('bad_flags', `reserved flags byte must be 0, got ${bytes[7]}`);
  const rank = bytes[6]!;
  if (rank > lim.maxRank) {
    throw new TensorFormatError('rank_limit', `rank ${rank} exceeds the limit of ${lim.maxRank}`);
  }
  const header = 8 + 4 * rank;
  if (bytes.length < header) {
    throw new TensorFormatError(
      'truncated',
      `tensor frame truncated: rank ${rank} needs a ${header}-byte header, got ${bytes.length} bytes`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(8 + 4 * i, true));
  checkShape(shape, lim);
  return fromBytes(dtype, shape, bytes.subarray(header), lim);
}

export function encodeJson(t: WireTensor): TensorJson {
  return { dtype: t.dtype, shape: [...t.shape], data: encodeBase64(dataBytes(t)) };
}

/** Accepts anything (parsed JSON); every failure is a TensorFormatError with the field named. */
export function decodeJson(value: unknown, limits: Partial<WireLimits> = {}): WireTensor {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const parsed = TensorJson.safeParse(value);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new TensorFormatError(
      'bad_json',
      `tensor JSON invalid at ${first.path.join('.') || '(root)'}: ${first.message}`,
    );
  }
  const { dtype, shape, data } = parsed.data;
  checkShape(shape, lim);
  const bytes = decodeBase64(data);
  if (!bytes) throw new TensorFormatError('bad_json', 'tensor JSON invalid at data: not canonical base64');
  return fromBytes(dtype, shape, bytes, lim);
}

function checkShape(shape: readonly number[], lim: WireLimits): void {
  if (shape.length > lim.maxRank) {
    throw new TensorFormatError('rank_limit', `rank ${shape.length} exceeds the limit of ${lim.maxRank}`);
  }
  let n = 1;
  for (const [i, d] of shape.entries()) {
    if (!Number.isInteger(d) || d < 1 || d > lim.maxDim) {
      throw new TensorFormatError(
        'dim_limit',
        `dimension ${i} is ${d}; each must be an integer in 1..${lim.maxDim}`,
      );
    }
    n *= d;
    if (n > lim.maxElements) {
      throw new TensorFormatError(
        'size_limit',
        `shape [${shape.join(', ')}] exceeds the limit of ${lim.maxElements} elements`,
      );
    }
  }
}

function fromBytes(dtype: DType, shape: number[], bytes: Uint8Array, lim: WireLimits): WireTensor {
  const expected = elementCount(shape) * ITEM_SIZE[dtype];
  if (bytes.length !== expected) {
    throw new TensorFormatError(
      bytes.length < expected ? 'truncated' : 'length_mismatch',
      `${bytes.length < expected ? 'truncated: ' : ''}${dtype} tensor of shape [${shape.join(', ')}] needs ${expected} data bytes, got ${bytes.length}`,
    );
  }
  // Always copy: the result owns aligned memory whatever the caller does with its buffer.
  const own = bytes.slice();
  if (dtype === 'uint8') return { dtype, shape, data: own };
  const view = new DataView(own.buffer);
  if (dtype === 'int32') {
    const data = LITTLE_ENDIAN
      ? new Int32Array(own.buffer)
      : Int32Array.from({ length: expected / 4 }, (_, i) => view.getInt32(i * 4, true));
    return { dtype, shape, data };
  }
  const data = LITTLE_ENDIAN
    ? new Float32Array(own.buffer)
    : Float32Array.from({ length: expected / 4 }, (_, i) => view.getFloat32(i * 4, true));
  if (!lim.allowNonFinite) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        throw new TensorFormatError('non_finite', `element ${i} is ${data[i]}; tensors must be finite`);
      }
    }
  }
  return { dtype, shape, data };
}

/**
 * The model's input as both the edge and the backend address it: float32 [1,H,W,C], accepting [H,W,C]
 * or [1,H,W,C] of the manifest's size (so both shapes get the same explanation id).
 */
export function asModelInput(
  t: WireTensor,
  input: { height: number; width: number; channels: number },
): WireTensor {
  const want = [input.height, input.width, input.channels];
  const shape = t.shape.length === 4 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
  if (t.dtype !== 'float32')
    throw new TensorFormatError('wrong_input', `tensor dtype must be float32, got ${t.dtype}`);
  if (shape.length !== 3 || shape.some((d, i) => d !== want[i])) {
    throw new TensorFormatError(
      'wrong_input',
      `tensor shape must be [${want.join(', ')}] or [1, ${want.join(', ')}] (the model's normalised input), got [${t.shape.join(', ')}]`,
    );
  }
  return { dtype: 'float32', shape: [1, ...want], data: t.data };
}
