// A tensor's place in its storage (shape, strides, offset in elements) and the row-major copy out of it.
//
// Element (i₀,…,iₙ₋₁) of a tensor lives at storage index offset + Σ iₖ·strideₖ (PyTorch's definition), so
// channels_last weights, transposes and views into a shared storage all come out in row-major order.

/** PyTorch allows 64 dimensions; anything near it in a checkpoint is corrupt. */
export const MAX_RANK = 64;

export interface Layout {
  readonly shape: readonly number[];
  readonly stride: readonly number[];
  /** Storage index of element (0,…,0). */
  readonly offset: number;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A layout from untrusted values (a pickle's tensor arguments), or a description of what is wrong. */
export function checkLayout(shape: unknown, stride: unknown, offset: unknown): Layout | string {
  if (!Array.isArray(shape) || !shape.every(isCount)) return `size ${show(shape)} is not a list of counts`;
  if (shape.length > MAX_RANK) return `size has ${shape.length} dimensions (at most ${MAX_RANK})`;
  if (!Array.isArray(stride) || !stride.every(isCount))
    return `stride ${show(stride)} is not a list of counts`;
  if (stride.length !== shape.length) return `stride ${show(stride)} does not match size ${show(shape)}`;
  if (!isCount(offset)) return `storage offset ${show(offset)} is not a count`;
  if (!Number.isSafeInteger(elementCount(shape)) || !Number.isSafeInteger(offset + span({ shape, stride }))) {
    return `size ${show(shape)} is too large`;
  }
  return { shape: [...shape], stride: [...stride], offset };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export function rowMajorStrides(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let step = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    stride[d] = step;
    step *= shape[d]!;
  }
  return stride;
}

/** Storage elements from element (0,…,0) through the last one: what must be read (0 for an empty tensor). */
export function span(layout: Pick<Layout, 'shape' | 'stride'>): number {
  const { shape, stride } = layout;
  if (shape.some((d) => d === 0)) return 0;
  return 1 + shape.reduce((s, d, k) => s + (d - 1) * stride[k]!, 0);
}

/** True when the storage run is already the row-major tensor (strides of size-1 dimensions do not matter). */
export function isRowMajor(layout: Pick<Layout, 'shape' | 'stride'>): boolean {
  let step = 1;
  for (let d = layout.shape.length - 1; d >= 0; d--) {
    const size = layout.shape[d]!;
    if (size !== 1 && layout.stride[d] !== step) return false;
    step *= size;
  }
  return true;
}

/** The tensor in row-major order from `run`, the storage elements starting at its element (0,…,0). */
export function gatherRowMajor(run: Float32Array, layout: Pick<Layout, 'shape' | 'stride'>): Float32Array {
  const { shape, stride } = layout;
  const n = elementCount(shape);
  const out = new Float32Array(n);
  if (n === 0) return out;
  const rank = shape.length;
  if (rank === 0) {
    out[0] = run[0]!;
    return out;
  }
  const inner = shape[rank - 1]!;
  const innerStride = stride[rank - 1]!;
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < n; o += inner) {
    for (let j = 0, s = src; j < inner; j++, s += innerStride) out[o + j] = run[s]!;
    // Odometer over the outer dimensions: step the last one, carrying into the ones before it.
    for (let d = rank - 2; d >= 0; d--) {
      index[d]!++;
      src += stride[d]!;
      if (index[d]! < shape[d]!) break;
      src -= stride[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** A short rendering of an untrusted value for an error message (bounded, whatever the value is). */
export function show(v: unknown, depth = 0): string {
  try {
    if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
    if (v === null || v === undefined) return 'None';
    if (typeof v === 'number' || typeof v === 'bigint') return String(v);
    if (typeof v === 'boolean') return v ? 'True' : 'False';
    if (Array.isArray(v)) {
      if (depth > 1) return '[...]';
      const items = Array.prototype.slice.call(v, 0, 6).map((x) => show(x, depth + 1));
      if (v.length > 6) items.push('...');
      return `(${items.join(', ')})`;
    }
    if (v instanceof Map) return `a dict of ${v.size} items`;
    if (v instanceof Uint8Array) return `${v.length} bytes`;
    return typeof v === 'function' ? 'a global' : 'an object';
  } catch {
    return 'an object';
  }
}
