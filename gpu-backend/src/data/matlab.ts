// MATLAB level-5 MAT-file reader, for the subset Stanford Cars' devkit uses: numeric, char, cell and struct arrays.
// The npm readers are little-used; this format subset is short enough to own and test against written fixtures.
import { inflateSync } from 'node:zlib';
import { DataError } from './errors';

export type MatValue =
  | { kind: 'numeric'; dims: number[]; data: Float64Array }
  | { kind: 'char'; dims: number[]; text: string }
  | { kind: 'cell'; dims: number[]; items: MatValue[] }
  | { kind: 'struct'; dims: number[]; fields: string[]; items: Record<string, MatValue>[] };

// Data types (miXXX) and array classes (mxXXX) from the MAT-file format reference.
const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
  UTF8: 16,
  UTF16: 17,
  UTF32: 18,
} as const;
const MX = { CELL: 1, STRUCT: 2, CHAR: 4 } as const;
const MX_NUMERIC = new Set([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);

interface Element {
  type: number;
  bytes: Uint8Array;
  /** Offset just past this element (8-byte aligned). */
  end: number;
}

class Reader {
  constructor(
    readonly file: string,
    readonly le: boolean,
  ) {}

  fail(where: string, message: string): never {
    throw new DataError(this.file, `${where}: ${message}`);
  }

  element(buf: Uint8Array, offset: number, where: string): Element {
    if (offset + 8 > buf.length) this.fail(where, `truncated element tag at byte ${offset}`);
    const view = new DataView(buf.buffer, buf.byteOffset + offset, 8);
    const first = view.getUint32(0, this.le);
    // Small data element: type and size share the first word, data sits in the next four bytes.
    if (first >>> 16 !== 0) {
      const size = first >>> 16;
      if (size > 4) this.fail(where, `small element claims ${size} bytes`);
      return { type: first & 0xffff, bytes: buf.subarray(offset + 4, offset + 4 + size), end: offset + 8 };
    }
    const size = view.getUint32(4, this.le);
    const start = offset + 8;
    if (start + size > buf.length) {
      this.fail(where, `element of type ${first} needs ${size} bytes, ${buf.length - start} left`);
    }
    // Compressed elements are not padded; everything else is padded to 8 bytes.
    const end = first === MI.COMPRESSED ? start + size : start + Math.ceil(size / 8) * 8;
    return { type: first, bytes: buf.subarray(start, start + size), end: Math.min(end, buf.length) };
  }

  numbers(el: Element, where: string): Float64Array {
    const { bytes, type } = el;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const width: Record<number, number> = {
      [MI.INT8]: 1,
      [MI.UINT8]: 1,
      [MI.INT16]: 2,
      [MI.UINT16]: 2,
      [MI.INT32]: 4,
      [MI.UINT32]: 4,
      [MI.SINGLE]: 4,
      [MI.DOUBLE]: 8,
      [MI.INT64]: 8,
      [MI.UINT64]: 8,
      [MI.UTF8]: 1,
      [MI.UTF16]: 2,
    };
    const w = width[type];
    if (!w) this.fail(where, `unsupported data type ${type}`);
    const n = Math.floor(bytes.length / w);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const o = i * w;
      switch (type) {
        case MI.INT8:
          out[i] = view.getInt8(o);
          break;
        case MI.UINT8:
        case MI.UTF8:
          out[i] = view.getUint8(o);
          break;
        case MI.INT16:
          out[i] = view.getInt16(o, this.le);
          break;
        case MI.UINT16:
        case MI.UTF16:
          out[i] = view.getUint16(o, this.le);
          break;
        case MI.INT32:
          out[i] = view.getInt32(o, this.le);
          break;
        case MI.UINT32:
          out[i] = view.getUint32(o, this.le);
          break;
        case MI.SINGLE:
          out[i] = view.getFloat32(o, this.le);
          break;
        case MI.DOUBLE:
          out[i] = view.getFloat64(o, this.le);
          break;
        case MI.INT64:
          out[i] = Number(view.getBigInt64(o, this.le));
          break;
        default:
          out[i] = Number(view.getBigUint64(o, this.le));
      }
    }
    return out;
  }

  text(el: Element): string {
    if (el.type === MI.INT8 || el.type === MI.UINT8) return new TextDecoder('latin1').decode(el.bytes);
    if (el.type === MI.UTF8) return new TextDecoder('utf-8').decode(el.bytes);
    return String.fromCharCode(...this.numbers(el, 'text'));
  }

  /** The contents of one miMATRIX element. */
  matrix(buf: Uint8Array, where: string): { name: string; value: MatValue } {
    const flagsEl = this.element(buf, 0, `${where}.flags`);
    if (flagsEl.type !== MI.UINT32 || flagsEl.bytes.length < 8) this.fail(where, 'bad array flags');
    const flags = this.numbers(flagsEl, where);
    const cls = flags[0]! & 0xff;
    const complex = (flags[0]! & 0x800) !== 0;
    const dimsEl = this.element(buf, flagsEl.end, `${where}.dims`);
    const dims = Array.from(this.numbers(dimsEl, `${where}.dims`));
    const nameEl = this.element(buf, dimsEl.end, `${where}.name`);
    const name = this.text(nameEl);
    const at = `${where}${name ? ` "${name}"` : ''}`;
    const count = dims.reduce((a, b) => a * b, 1);
    let offset = nameEl.end;
    if (MX_NUMERIC.has(cls)) {
      const real = this.element(buf, offset, `${at}.real`);
      if (complex) this.fail(at, 'complex arrays are not supported');
      const data = this.numbers(real, at);
      if (data.length !== count)
        this.fail(at, `dims [${dims.join(', ')}] need ${count} values, got ${data.length}`);
      return { name, value: { kind: 'numeric', dims, data } };
    }
    if (cls === MX.CHAR) {
      const el = this.element(buf, offset, `${at}.data`);
      // UTF-8 text has no fixed code width to reshape by; MATLAB only writes it for 1×n rows.
      if (el.type === MI.UTF8) return { name, value: { kind: 'char', dims, text: this.text(el) } };
      const codes = this.numbers(el, at);
      // Column-major: a 1×n row is the string itself; a char matrix is read across, one line per row.
      const rows = dims[0] ?? 0;
      const cols = count / Math.max(rows, 1);
      const lines: string[] = [];
      for (let r = 0; r < rows; r++) {
        let line = '';
        for (let c = 0; c < cols; c++) line += String.fromCharCode(codes[c * rows + r] ?? 32);
        lines.push(line);
      }
      return { name, value: { kind: 'char', dims, text: lines.join('\n') } };
    }
    if (cls === MX.CELL) {
      const items: MatValue[] = [];
      for (let i = 0; i < count; i++) {
        const el = this.element(buf, offset, `${at}{${i + 1}}`);
        if (el.type !== MI.MATRIX)
          this.fail(`${at}{${i + 1}}`, `expected a matrix element, got type ${el.type}`);
        items.push(el.bytes.length ? this.matrix(el.bytes, `${at}{${i + 1}}`).value : empty());
        offset = el.end;
      }
      return { name, value: { kind: 'cell', dims, items } };
    }
    if (cls === MX.STRUCT) {
      const lenEl = this.element(buf, offset, `${at}.fieldNameLength`);
      const len = this.numbers(lenEl, at)[0]!;
      const namesEl = this.element(buf, lenEl.end, `${at}.fieldNames`);
      const fields: string[] = [];
      for (let o = 0; o + len <= namesEl.bytes.length; o += len) {
        fields.push(
          this.text({ ...namesEl, bytes: namesEl.bytes.subarray(o, o + len) }).replace(/\0.*$/s, ''),
        );
      }
      offset = namesEl.end;
      const items: Record<string, MatValue>[] = [];
      for (let i = 0; i < count; i++) {
        const item: Record<string, MatValue> = {};
        for (const f of fields) {
          const w = `${at}(${i + 1}).${f}`;
          const el = this.element(buf, offset, w);
          if (el.type !== MI.MATRIX) this.fail(w, `expected a matrix element, got type ${el.type}`);
          item[f] = el.bytes.length ? this.matrix(el.bytes, w).value : empty();
          offset = el.end;
        }
        items.push(item);
      }
      return { name, value: { kind: 'struct', dims, fields, items } };
    }
    return this.fail(at, `array class ${cls} is not supported (numeric, char, cell and struct are)`);
  }
}

function empty(): MatValue {
  return { kind: 'numeric', dims: [0, 0], data: new Float64Array(0) };
}

/** Reads every top-level variable of a level-5 MAT-file (compressed or not). */
export function parseMat(bytes: Uint8Array, file: string): Record<string, MatValue> {
  if (bytes.length < 128)
    throw new DataError(file, `header: truncated (${bytes.length} bytes, a MAT-file has 128)`);
  const header = new TextDecoder('latin1').decode(bytes.subarray(0, 116));
  const endian = String.fromCharCode(bytes[126]!, bytes[127]!);
  if (endian !== 'IM' && endian !== 'MI') {
    const hint =
      header.startsWith('MATLAB 7.3') || bytes[0] === 0x89 ? ' (v7.3/HDF5 files are not supported)' : '';
    throw new DataError(file, `header: not a level-5 MAT-file${hint}`);
  }
  const reader = new Reader(file, endian === 'IM');
  const out: Record<string, MatValue> = {};
  let offset = 128;
  while (offset < bytes.length) {
    let el = reader.element(bytes, offset, `variable ${Object.keys(out).length + 1}`);
    offset = el.end;
    if (el.type === MI.COMPRESSED) {
      let inflated: Uint8Array;
      try {
        inflated = inflateSync(el.bytes);
      } catch (err) {
        throw new DataError(file, `corrupt compressed variable (${(err as Error).message})`);
      }
      el = reader.element(inflated, 0, `variable ${Object.keys(out).length + 1}`);
    }
    if (el.type !== MI.MATRIX) continue;
    const { name, value } = reader.matrix(el.bytes, 'variable');
    out[name] = value;
  }
  return out;
}

/** A struct field as a number (a 1×1 numeric), with an error naming the element if it is not. */
export function matNumber(v: MatValue | undefined, file: string, where: string): number {
  if (v?.kind !== 'numeric' || v.data.length !== 1) {
    throw new DataError(
      file,
      `${where}: expected a number, got ${v ? `${v.kind} [${v.dims.join('×')}]` : 'nothing'}`,
    );
  }
  return v.data[0]!;
}

export function matString(v: MatValue | undefined, file: string, where: string): string {
  if (v?.kind !== 'char') {
    throw new DataError(
      file,
      `${where}: expected text, got ${v ? `${v.kind} [${v.dims.join('×')}]` : 'nothing'}`,
    );
  }
  return v.text;
}
