// A restricted unpickler for torch.save's pickles: the few globals a state dict needs, nothing executed.
//
// Python's pickle runs whatever callable a file names, which is why torch.load of an untrusted file is
// unsafe. pickleparser only interprets opcodes, but by default turns an unknown global into an inert
// placeholder object and lets REDUCE/NEWOBJ call or construct it; here every global outside the registry
// below is refused the moment the file names it ("refuses unknown global os.system"), so a checkpoint
// that pickles a class, a module or a function call is never half-read.
//
// The registry (fresh and frozen for each parse, so a hostile BUILD cannot alter the functions another
// file will use):
//   collections.OrderedDict                         → a Map (dict order kept)
//   torch._utils._rebuild_tensor_v2 / _rebuild_tensor → a TensorRef (storage, offset, size, stride)
//   torch._utils._rebuild_parameter                 → its tensor (requires_grad and hooks dropped)
//   torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage → dtype names, only usable
//                                                     inside a persistent id
// Persistent ids are resolved by the caller (zip and legacy files name storages differently).
import { NameRegistry, Parser } from 'pickleparser';
import { show } from './layout';
import { CheckpointError, type TorchDtype } from './state-dict';
import type { StorageSource } from './tensor-entry';

/** A pickle above this is not a state dict (ResNet-50's is ~30 KB; a 10,000-tensor dict's ~2 MB). */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

/** A pickled checkpoint (zip or legacy): its top object and where each storage's bytes are. */
export interface PickledCheckpoint {
  readonly top: unknown;
  storage(ref: StorageRef): Promise<StorageSource>;
  close(): Promise<void>;
}

/** Storage class names torch pickles (in persistent ids) and the element type each holds. */
const STORAGE_TYPES: Readonly<Record<string, TorchDtype>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** A storage a persistent id names: `key` locates its bytes; `view` is a legacy file's sub-storage. */
export interface StorageRef {
  readonly key: string;
  readonly dtype: TorchDtype;
  /** Elements the pickle says the storage has (the file's bytes are what count; see tensor-entry.ts). */
  readonly numel: number;
  readonly view?: { readonly key: string; readonly offset: number; readonly size: number };
}

/** `_rebuild_tensor_v2`'s arguments, copied out of the pickle and not yet checked (tensor-entry.ts does). */
export interface TensorRef {
  readonly storage: StorageRef;
  readonly offset: unknown;
  readonly shape: unknown;
  readonly stride: unknown;
}

// Only objects our rebuild functions made count as tensors: a pickle cannot forge one by shape.
const tensors = new WeakSet<object>();
const storages = new WeakSet<object>();

export function isTensorRef(v: unknown): v is TensorRef {
  return typeof v === 'object' && v !== null && tensors.has(v);
}

/** The pickle ended before its STOP inside a prefix of the file: read more of the file and parse again. */
export class NeedMoreBytes extends Error {
  override name = 'NeedMoreBytes';
}

/** A storage type class named in a persistent id, as the registry hands it out. */
export type StorageTypeOf = (v: unknown) => TorchDtype | undefined;

/** Builds a StorageRef from checked persistent-id parts (callers check the pid's layout). */
export function storageRef(
  key: string,
  dtype: TorchDtype,
  numel: number,
  view?: StorageRef['view'],
): StorageRef {
  const ref = Object.freeze(view === undefined ? { key, dtype, numel } : { key, dtype, numel, view });
  storages.add(ref);
  return ref;
}

export interface UnpickleOptions {
  file: string;
  /** What is being parsed, for messages ("data.pkl", "the state dict pickle"). */
  what: string;
  /** Turns a persistent id (already a plain array) into a StorageRef, throwing CheckpointError if it cannot. */
  persistent?: (pid: unknown, storageType: StorageTypeOf) => StorageRef;
  /** `bytes` is only a prefix of the file: running out means NeedMoreBytes rather than a truncated file. */
  partial?: boolean;
}

/** Unpickles one pickle starting at `start`; `end` is the offset just past its STOP opcode. */
export function unpickle(
  bytes: Uint8Array,
  start: number,
  options: UnpickleOptions,
): { value: unknown; end: number } {
  const { file, what } = options;
  const names = new StateDictNames(file);
  const reader = new Reader(bytes, start, options.partial ?? false);
  const parser = new Parser({
    nameResolver: names,
    persistentResolver: {
      resolve: (pid: unknown) => {
        if (options.persistent === undefined) throw new CheckpointError(file, `${what} refers to a storage`);
        return options.persistent(pid, names.storageType);
      },
    },
    extensionResolver: {
      resolve: (code: number) => {
        throw new CheckpointError(file, `${what} uses pickle extension code ${code}: not a state dict`);
      },
    },
    unpicklingTypeOfDictionary: 'Map', // a plain object would let a key named __proto__ swap prototypes
    unpicklingTypeOfSet: 'array',
  });
  const value = guarded(file, what, () => parser.read<unknown>(reader));
  return { value, end: reader.position };
}

/**
 * Runs `f` over values that came out of a pickle: anything but our own errors (a TypeError from an opcode
 * applied to the wrong kind of value, a RangeError from a huge APPENDS) means the file is malformed.
 */
export function guarded<T>(file: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof CheckpointError || err instanceof NeedMoreBytes) throw err;
    throw new CheckpointError(
      file,
      `${what} is not a pickle this reader can read: ${(err as Error).message}`,
    );
  }
}

/** pickleparser's NameRegistry with only the state-dict globals, refusing the rest instead of faking them. */
class StateDictNames extends NameRegistry {
  private readonly storageTypes = new Map<unknown, TorchDtype>();

  constructor(private readonly file: string) {
    super();
    const err = (detail: string) => new CheckpointError(file, detail);
    const rebuildTensor = (storage: unknown, offset: unknown, size: unknown, stride: unknown) => {
      if (typeof storage !== 'object' || storage === null || !storages.has(storage)) {
        throw err(`_rebuild_tensor_v2 got ${show(storage)} where a storage belongs`);
      }
      const ref: TensorRef = Object.freeze({
        storage: storage as StorageRef,
        offset,
        shape: plainCopy(size),
        stride: plainCopy(stride),
      });
      tensors.add(ref);
      return ref;
    };
    const entries: [string, string, (...args: unknown[]) => unknown][] = [
      ['collections', 'OrderedDict', (...args) => orderedDict(err, args)],
      ['torch._utils', '_rebuild_tensor_v2', rebuildTensor],
      ['torch._utils', '_rebuild_tensor', rebuildTensor],
      [
        'torch._utils',
        '_rebuild_parameter',
        (data) => {
          if (!isTensorRef(data)) throw err(`_rebuild_parameter got ${show(data)} where a tensor belongs`);
          return data;
        },
      ],
    ];
    for (const [name, dtype] of Object.entries(STORAGE_TYPES)) {
      const marker = () => {
        throw err(`torch.${name} is called: storages are only read through persistent ids`);
      };
      this.storageTypes.set(marker, dtype);
      entries.push(['torch', name, marker]);
    }
    for (const [module, name, f] of entries) this.register(module, name, Object.freeze(f));
  }

  /** The dtype of a storage type global from this registry (undefined for anything else). */
  readonly storageType: StorageTypeOf = (v) => this.storageTypes.get(v);

  override onMissingName(module: string, name: string): never {
    const named =
      typeof module === 'string' && typeof name === 'string' ? `${module}.${name}` : show([module, name]);
    throw new CheckpointError(
      this.file,
      `refuses unknown global ${named.length > 120 ? `${named.slice(0, 117)}...` : named}: only plain state dicts are read`,
    );
  }
}

/** Python's OrderedDict(): empty, or from a list of (key, value) pairs. */
function orderedDict(err: (detail: string) => CheckpointError, args: unknown[]): Map<unknown, unknown> {
  const dict = new Map<unknown, unknown>();
  if (args.length === 0) return dict;
  const items = args[0];
  if (args.length > 1 || !Array.isArray(items)) throw err(`OrderedDict got ${show(args)}: expected pairs`);
  for (const pair of Array.prototype.slice.call(items) as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2)
      throw err(`OrderedDict got ${show(pair)}: expected a pair`);
    dict.set(pair[0], pair[1]);
  }
  return dict;
}

/** A fresh, ordinary array (a tuple from the pickle may be shared through the memo and changed later). */
function plainCopy(v: unknown): unknown {
  return Array.isArray(v) ? (Array.prototype.slice.call(v) as unknown[]) : v;
}

/**
 * pickleparser's reader interface over `bytes` from `start`, stricter than its BufferReader: negative lengths
 * (which would move the position backwards and loop forever) and 64-bit lengths beyond 2^53 are refused, and
 * in a prefix of the file, running out is NeedMoreBytes.
 */
class Reader {
  private readonly view: DataView;
  private readonly utf8 = new TextDecoder('utf-8');
  private readonly latin1 = new TextDecoder('latin1');
  position: number;

  constructor(
    private readonly buffer: Uint8Array,
    start: number,
    private readonly partial: boolean,
  ) {
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.position = start;
  }

  private take(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`impossible length ${n}`);
    const at = this.position;
    if (at + n > this.buffer.length) {
      if (this.partial) throw new NeedMoreBytes();
      throw new Error(
        `the pickle needs ${at + n - this.buffer.length} more bytes than there are (truncated)`,
      );
    }
    this.position = at + n;
    return at;
  }

  byte(): number {
    return this.buffer[this.take(1)]!;
  }
  bytes(length: number): Uint8Array {
    const at = this.take(length);
    return this.buffer.subarray(at, at + length);
  }
  uint16(): number {
    return this.view.getUint16(this.take(2), true);
  }
  int32(): number {
    return this.view.getInt32(this.take(4), true);
  }
  uint32(): number {
    return this.view.getUint32(this.take(4), true);
  }
  uint64(): number {
    const at = this.take(8);
    const n = this.view.getUint32(at, true) + 2 ** 32 * this.view.getUint32(at + 4, true);
    if (!Number.isSafeInteger(n)) throw new Error(`a 64-bit length ${n} beyond 2^53`);
    return n;
  }
  float64(): number {
    return this.view.getFloat64(this.take(8), false); // pickle's BINFLOAT is big-endian
  }
  skip(offset: number): void {
    this.take(offset);
  }
  string(size: number, encoding: 'ascii' | 'utf-8'): string {
    return (encoding === 'utf-8' ? this.utf8 : this.latin1).decode(this.bytes(size));
  }
  line(): string {
    const end = this.buffer.indexOf(0x0a, this.position);
    if (end === -1) {
      if (this.partial) throw new NeedMoreBytes();
      throw new Error('a text opcode runs to the end of the data without a newline');
    }
    const text = this.string(end - this.position, 'ascii');
    this.take(1);
    return text;
  }
  hasNext(): boolean {
    if (this.position < this.buffer.length) return true;
    if (this.partial) throw new NeedMoreBytes();
    return false;
  }
}
