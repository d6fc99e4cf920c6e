// Raw little-endian element bytes of each checkpoint dtype, converted to float32.
//
// float16 and bfloat16 widen exactly; float64 and int64/int32 round to the nearest float32 (as PyTorch's
// `.float()` does); bool becomes 0/1. The bytes are read through typed arrays, after a byte swap on a
// big-endian host, so the common little-endian case is a view or one tight loop.
import type { TorchDtype } from './state-dict';

export const ITEM_SIZE: Readonly<Record<TorchDtype, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let halfTable: Float32Array | undefined;

/** IEEE 754 binary16 → number (subnormals, ±0, ±Inf and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** All 65,536 halves, built once on first use (256 KiB): a lookup beats the bit arithmetic per element. */
function halves(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65_536);
    for (let h = 0; h < 65_536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/**
 * The elements in `bytes` (a whole number of `dtype` items, little-endian) as float32. The result may be a
 * view on `bytes` (float32 on a little-endian host), so pass bytes the caller no longer needs.
 */
export function decodeToFloat32(dtype: TorchDtype, bytes: Uint8Array): Float32Array {
  const size = ITEM_SIZE[dtype];
  const n = Math.floor(bytes.length / size);
  // Typed-array views need an aligned start; a buffer of our own is also safe to byte-swap in place.
  let own = bytes;
  if (bytes.byteOffset % size !== 0 || (!LITTLE_ENDIAN && size > 1)) own = bytes.slice(0, n * size);
  if (!LITTLE_ENDIAN && size > 1) swapBytes(own, size);
  const buffer = own.buffer;
  const at = own.byteOffset;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, at, n);
    case 'float64':
      return Float32Array.from(new Float64Array(buffer, at, n));
    case 'float16': {
      const table = halves();
      const src = new Uint16Array(buffer, at, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32: shift the bits into place and reinterpret.
      const src = new Uint16Array(buffer, at, n);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'int64': {
      const src = new BigInt64Array(buffer, at, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
      return out;
    }
    case 'int32':
      return Float32Array.from(new Int32Array(buffer, at, n));
    case 'int16':
      return Float32Array.from(new Int16Array(buffer, at, n));
    case 'int8':
      return Float32Array.from(new Int8Array(buffer, at, n));
    case 'uint8':
      return Float32Array.from(new Uint8Array(buffer, at, n));
    case 'bool': {
      const src = new Uint8Array(buffer, at, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i] ? 1 : 0;
      return out;
    }
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}
