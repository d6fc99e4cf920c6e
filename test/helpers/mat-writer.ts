// A MATLAB level-5 MAT-file writer for test fixtures: numeric, char, cell and struct arrays, optionally compressed.
import { deflateSync } from 'node:zlib';

export type MatInput =
  | number
  | string
  | { numeric: number[]; dims?: number[]; type?: 'double' | 'uint8' | 'uint16' | 'int32' }
  | { cell: MatInput[] }
  | { struct: Record<string, MatInput>[] };

const MI = { INT8: 1, UINT8: 2, UINT16: 4, INT32: 5, UINT32: 6, DOUBLE: 9, MATRIX: 14, COMPRESSED: 15 };

function element(type: number, data: Buffer): Buffer {
  const tag = Buffer.alloc(8);
  tag.writeUInt32LE(type, 0);
  tag.writeUInt32LE(data.length, 4);
  const pad = Buffer.alloc((8 - (data.length % 8)) % 8);
  return Buffer.concat([tag, data, pad]);
}

function typed(type: 'double' | 'uint8' | 'uint16' | 'int32', values: number[]): Buffer {
  const size = { double: 8, uint8: 1, uint16: 2, int32: 4 }[type];
  const b = Buffer.alloc(values.length * size);
  values.forEach((v, i) => {
    if (type === 'double') b.writeDoubleLE(v, i * 8);
    else if (type === 'uint8') b.writeUInt8(v, i);
    else if (type === 'uint16') b.writeUInt16LE(v, i * 2);
    else b.writeInt32LE(v, i * 4);
  });
  return element({ double: MI.DOUBLE, uint8: MI.UINT8, uint16: MI.UINT16, int32: MI.INT32 }[type], b);
}

function header(cls: number, dims: number[], name: string): Buffer {
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE(cls, 0);
  return Buffer.concat([
    element(MI.UINT32, flags),
    typed('int32', dims),
    element(MI.INT8, Buffer.from(name, 'latin1')),
  ]);
}

export function matrix(name: string, v: MatInput): Buffer {
  let body: Buffer;
  if (typeof v === 'number') {
    // Stored compactly as uint8/uint16 when it fits, as MATLAB does: readers must widen.
    const type =
      Number.isInteger(v) && v >= 0 && v < 256
        ? 'uint8'
        : Number.isInteger(v) && v >= 0 && v < 65536
          ? 'uint16'
          : 'double';
    body = Buffer.concat([header(6, [1, 1], name), typed(type, [v])]);
  } else if (typeof v === 'string') {
    const codes = [...v].map((c) => c.charCodeAt(0));
    body = Buffer.concat([header(4, [1, codes.length], name), typed('uint16', codes)]);
  } else if ('numeric' in v) {
    body = Buffer.concat([
      header(6, v.dims ?? [1, v.numeric.length], name),
      typed(v.type ?? 'double', v.numeric),
    ]);
  } else if ('cell' in v) {
    body = Buffer.concat([header(1, [1, v.cell.length], name), ...v.cell.map((c) => matrix('', c))]);
  } else {
    const fields = Object.keys(v.struct[0] ?? {});
    const len = 32;
    const names = Buffer.alloc(fields.length * len);
    fields.forEach((f, i) => {
      names.write(f, i * len, 'latin1');
    });
    const lenEl = Buffer.alloc(8);
    lenEl.writeUInt32LE((4 << 16) | MI.INT32, 0);
    lenEl.writeInt32LE(len, 4);
    body = Buffer.concat([
      header(2, [1, v.struct.length], name),
      lenEl,
      element(MI.INT8, names),
      ...v.struct.flatMap((item) => fields.map((f) => matrix('', item[f]!))),
    ]);
  }
  return element(MI.MATRIX, body);
}

/** A whole MAT-file; `compress` wraps each variable in miCOMPRESSED as MATLAB's default save does. */
export function matFile(vars: Record<string, MatInput>, compress = true): Buffer {
  const head = Buffer.alloc(128, 0x20);
  head.write('MATLAB 5.0 MAT-file, written by the ProtoPool tests', 0, 'latin1');
  head.writeUInt16LE(0x0100, 124);
  head.write('IM', 126, 'latin1');
  const parts = Object.entries(vars).map(([name, v]) => {
    const m = matrix(name, v);
    if (!compress) return m;
    const z = deflateSync(m);
    const tag = Buffer.alloc(8);
    tag.writeUInt32LE(MI.COMPRESSED, 0);
    tag.writeUInt32LE(z.length, 4);
    return Buffer.concat([tag, z]);
  });
  return Buffer.concat([head, ...parts]);
}
