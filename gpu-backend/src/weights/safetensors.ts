// The safetensors format: a JSON header naming each tensor's dtype, shape and byte range, then the data.
//
//   0      u64 LE  N, the header's length (at most 100 MB, safetensors' own limit)
//   8      N bytes of UTF-8 JSON: {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {…}}
//   8 + N  the data: tensor `name` is bytes [begin, end) of it, row-major, little-endian
// Each range must lie in the file and hold exactly shape × item size bytes. Entries come out in data order
// (the order of the bytes in the file), since a JSON object's key order is not kept for integer-like keys.
import type { CheckpointFile } from './checkpoint-file';
import { ITEM_SIZE } from './decode';
import { elementCount, rowMajorStrides, show } from './layout';
import { CheckpointError, type TorchDtype } from './state-dict';
import type { StorageSource, TensorSpec } from './tensor-entry';

export const MAX_HEADER_BYTES = 100_000_000;

const DTYPES: Readonly<Record<string, TorchDtype>> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

export interface SafetensorsTensor {
  key: string;
  spec: TensorSpec;
  storage: StorageSource;
}

export async function readSafetensors(file: CheckpointFile): Promise<SafetensorsTensor[]> {
  const head = new DataView((await file.read(0, 8, 'the header length')).buffer);
  const length = head.getUint32(0, true) + 2 ** 32 * head.getUint32(4, true);
  if (length > MAX_HEADER_BYTES)
    throw file.error(`safetensors header of ${length} bytes (at most ${MAX_HEADER_BYTES})`);
  const dataStart = 8 + length;
  if (dataStart > file.size) {
    throw file.error(
      `safetensors header of ${length} bytes runs past the end of the file (${file.size} bytes)`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(await file.read(8, length, 'the header')),
    );
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw file.error(`safetensors header is not JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw file.error(`safetensors header is ${show(header)}, not a JSON object`);
  }
  const dataBytes = file.size - dataStart;
  const tensors: (SafetensorsTensor & { begin: number })[] = [];
  for (const [key, info] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const { dtype, shape, begin, end } = checkInfo(file, key, info);
    if (end > dataBytes) {
      throw file.error(
        `data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes)`,
        key,
      );
    }
    const item = ITEM_SIZE[dtype];
    const needs = elementCount(shape);
    if (end - begin > needs * item) {
      // Shorter ranges are refused by tensorEntry ("storage holds N elements, the tensor needs M").
      throw file.error(`data_offsets hold ${(end - begin) / item} elements, the shape needs ${needs}`, key);
    }
    const at = dataStart + begin;
    tensors.push({
      key,
      begin,
      spec: { dtype, shape, stride: rowMajorStrides(shape), offset: 0 },
      storage: { bytes: end - begin, read: (start, n) => file.read(at + start, n, `the data of ${key}`) },
    });
  }
  return tensors.sort((a, b) => a.begin - b.begin).map(({ key, spec, storage }) => ({ key, spec, storage }));
}

/** `dtype "F22"`, or `a missing dtype` when the header entry has none. */
const field = (name: string, v: unknown) => (v === undefined ? `a missing ${name}` : `${name} ${show(v)}`);

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkInfo(
  file: CheckpointFile,
  key: string,
  info: unknown,
): { dtype: TorchDtype; shape: number[]; begin: number; end: number } {
  if (typeof info !== 'object' || info === null) throw file.error(`header entry is ${show(info)}`, key);
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  const type = typeof dtype === 'string' && Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype] : undefined;
  if (type === undefined) {
    throw file.error(`${field('dtype', dtype)} is not read (${Object.keys(DTYPES).join(', ')} are)`, key);
  }
  if (!Array.isArray(shape) || !shape.every(isCount) || !Number.isSafeInteger(elementCount(shape))) {
    throw file.error(`${field('shape', shape)} is not a list of counts`, key);
  }
  const [begin, end] = Array.isArray(offsets) && offsets.length === 2 ? offsets : [];
  if (!isCount(begin) || !isCount(end) || begin > end) {
    throw file.error(`${field('data_offsets', offsets)} is not [begin, end]`, key);
  }
  return { dtype: type, shape, begin, end };
}
