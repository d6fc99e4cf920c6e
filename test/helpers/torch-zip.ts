// Writes a state dict as `torch.save` does (zip format, pickle protocol 2), for tests and benchmarks.
//
// The layout torch 1.6+ writes: <name>/data.pkl (an OrderedDict whose values are
// torch._utils._rebuild_tensor_v2(persistent storage id, offset, size, stride, requires_grad, hooks)),
// <name>/data/<storage key> (raw little-endian values, one storage per tensor here), <name>/version.
// Entries are stored uncompressed, as torch stores them. Sizes stay under 4 GiB (no ZIP64).
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export interface TorchTensorSpec {
  key: string;
  shape: readonly number[];
  /** float32 values; int64 tensors (counters) are written from these as integers. */
  values: Float32Array;
  dtype?: 'float32' | 'int64';
}

class Pickle {
  private parts: Buffer[] = [];
  op(...bytes: number[]) {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  global(module: string, name: string) {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'latin1'));
    return this;
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.parts.push(Buffer.from('X'), len, b);
    return this;
  }
  int(n: number) {
    const b = Buffer.alloc(5);
    b[0] = 0x4a; // BININT
    b.writeInt32LE(n, 1);
    this.parts.push(b);
    return this;
  }
  tuple(items: number[]) {
    if (items.length === 0) return this.op(0x29); // EMPTY_TUPLE
    this.op(0x28); // MARK
    for (const i of items) this.int(i);
    return this.op(0x74); // TUPLE
  }
  bytes() {
    return Buffer.concat(this.parts);
  }
}

const MARK = 0x28;
const TUPLE = 0x74;
const REDUCE = 0x52;

function dataPkl(tensors: readonly TorchTensorSpec[]): Buffer {
  const p = new Pickle().op(0x80, 2).global('collections', 'OrderedDict').op(0x29, REDUCE, MARK);
  tensors.forEach((t, i) => {
    const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    const numel = t.shape.reduce((a, b) => a * b, 1);
    p.str(t.key).global('torch._utils', '_rebuild_tensor_v2').op(MARK);
    p.op(MARK)
      .str('storage')
      .global('torch', t.dtype === 'int64' ? 'LongStorage' : 'FloatStorage');
    p.str(String(i)).str('cpu').int(numel).op(TUPLE, 0x51); // BINPERSID
    p.int(0)
      .tuple([...t.shape])
      .tuple(strides)
      .op(0x89); // NEWFALSE: requires_grad
    p.global('collections', 'OrderedDict').op(0x29, REDUCE, TUPLE, REDUCE);
  });
  return p.op(0x75, 0x2e).bytes(); // SETITEMS, STOP
}

function storageBytes(t: TorchTensorSpec): Buffer {
  if (t.dtype !== 'int64') return Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength);
  const b = Buffer.alloc(t.values.length * 8);
  for (const [i, v] of t.values.entries()) b.writeBigInt64LE(BigInt(Math.round(v)), i * 8);
  return b;
}

/** Writes `tensors` to `path` as torch.save(OrderedDict) would, one entry at a time. */
export async function writeTorchZip(
  path: string,
  tensors: readonly TorchTensorSpec[],
  name = 'archive',
): Promise<void> {
  const file = await open(path, 'w');
  const central: Buffer[] = [];
  let offset = 0;
  const add = async (entry: string, data: Buffer) => {
    const nameBytes = Buffer.from(entry, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    await file.write(Buffer.concat([local, nameBytes]));
    await file.write(data);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt32LE(crc, 16);
    dir.writeUInt32LE(data.length, 20);
    dir.writeUInt32LE(data.length, 24);
    dir.writeUInt16LE(nameBytes.length, 28);
    dir.writeUInt32LE(offset, 42);
    central.push(dir, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  };
  try {
    await add(`${name}/data.pkl`, dataPkl(tensors));
    for (const [i, t] of tensors.entries()) await add(`${name}/data/${i}`, storageBytes(t));
    await add(`${name}/version`, Buffer.from('3\n'));
    const dir = Buffer.concat(central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(tensors.length + 2, 8);
    end.writeUInt16LE(tensors.length + 2, 10);
    end.writeUInt32LE(dir.length, 12);
    end.writeUInt32LE(offset, 16);
    await file.write(Buffer.concat([dir, end]));
  } finally {
    await file.close();
  }
}
