// torch.save's legacy format (`_use_new_zipfile_serialization=False`, and every file before PyTorch 1.6).
//
// Five pickles back to back, then the storages' bytes (checked on files written by PyTorch 1.13):
//   1. the magic number 0x1950a86a20f9469cfc6c    4. the object; a tensor's storage is the persistent id
//   2. the protocol version 1001                      ('storage', torch.<T>Storage, root_key, location,
//   3. sys_info {protocol_version, little_endian,      numel, view_metadata)
//      type_sizes}                                  5. the storage keys, sorted as strings
// then for each key in that order: its element count (u64 little-endian) and count × item size raw bytes.
// Nothing records where a pickle ends, so the pickles are parsed from a prefix of the file that grows
// until the unpickler reaches the fifth STOP; only that prefix and the 8-byte counts are read at open.
import type { CheckpointFile } from './checkpoint-file';
import { ITEM_SIZE } from './decode';
import { show } from './layout';
import type { StorageSource } from './tensor-entry';
import {
  guarded,
  MAX_PICKLE_BYTES,
  NeedMoreBytes,
  type PickledCheckpoint,
  type StorageRef,
  type StorageTypeOf,
  storageRef,
  unpickle,
} from './torch-pickle';

/** The LONG1 opcode and the ten little-endian bytes of torch's legacy magic number. */
const MAGIC = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
const PROTOCOL_VERSION = 1001;
/** The first read of the pickles; most state dicts' fit (ResNet-50's are ~40 KB). */
const FIRST_PREFIX = 256 * 1024;

/** `firstRead` is the size of the first prefix tried (tests make it tiny to exercise the growth). */
export async function openTorchLegacy(
  file: CheckpointFile,
  firstRead = FIRST_PREFIX,
): Promise<PickledCheckpoint> {
  const parsed = await readPickles(file, firstRead);
  const roots = await locateStorages(file, parsed);
  return {
    top: parsed.top,
    storage: async (ref) => storageSource(file, roots, ref),
    async close() {},
  };
}

interface Parsed {
  top: unknown;
  /** Storage keys, in the order the file writes their bytes. */
  keys: string[];
  /** Every storage the object pickle names, by root key (its dtype gives the item size). */
  refs: Map<string, StorageRef>;
  /** Where the storage region starts: just past the key list's STOP. */
  end: number;
}

async function readPickles(file: CheckpointFile, firstRead: number): Promise<Parsed> {
  let prefix = Math.min(file.size, Math.max(1, firstRead));
  for (;;) {
    const bytes = await file.read(0, prefix, 'the pickles');
    try {
      return parsePickles(file, bytes, prefix < file.size);
    } catch (err) {
      if (!(err instanceof NeedMoreBytes)) throw err;
      if (prefix >= MAX_PICKLE_BYTES) throw file.error(`the pickles run past ${MAX_PICKLE_BYTES} bytes`);
      prefix = Math.min(file.size, prefix * 4, MAX_PICKLE_BYTES);
    }
  }
}

function parsePickles(file: CheckpointFile, bytes: Uint8Array, partial: boolean): Parsed {
  // Checks on what came out of a pickle run guarded: its lists and dicts may be odd objects.
  return guarded(file.path, 'the legacy pickles', () => {
    const opts = { file: file.path, partial };
    const version = unpickle(bytes, skipMagic(file, bytes, partial), {
      ...opts,
      what: 'the protocol version pickle',
    });
    if (version.value !== PROTOCOL_VERSION) {
      throw file.error(`legacy protocol version ${show(version.value)} (only ${PROTOCOL_VERSION} is read)`);
    }
    const info = unpickle(bytes, version.end, { ...opts, what: 'the sys_info pickle' });
    if (info.value instanceof Map && info.value.get('little_endian') === false) {
      throw file.error('saved on a big-endian machine: only little-endian files are read');
    }
    const refs = new Map<string, StorageRef>();
    const object = unpickle(bytes, info.end, {
      ...opts,
      what: 'the object pickle',
      persistent: (pid, storageType) => {
        const ref = legacyStorageRef(file, pid, storageType);
        if (!refs.has(ref.key)) refs.set(ref.key, ref);
        return ref;
      },
    });
    const list = unpickle(bytes, object.end, { ...opts, what: 'the storage key list' });
    // A plain copy: the list walked after this must not be an object the pickle shaped.
    const keys = Array.isArray(list.value)
      ? (Array.prototype.slice.call(list.value) as unknown[])
      : undefined;
    if (keys === undefined || !keys.every((k): k is string => typeof k === 'string')) {
      throw file.error(`the storage key list is ${show(list.value)}, not a list of strings`);
    }
    return { top: object.value, keys, refs, end: list.end };
  });
}

/** Checks pickle 1 byte for byte (pickleparser cannot read a 10-byte LONG1) and returns where it ends. */
function skipMagic(file: CheckpointFile, bytes: Uint8Array, partial: boolean): number {
  let at = 2; // PROTO n, checked by the sniffer
  if (bytes[at] === 0x95) at += 9; // protocol 4+ frames its pickles
  if (bytes.length < at + MAGIC.length) {
    if (partial) throw new NeedMoreBytes();
    throw file.error('a pickle, but too short for a legacy torch.save file');
  }
  if (!MAGIC.every((b, i) => bytes[at + i] === b)) {
    throw file.error(
      "a pickle, but not a torch.save file (no legacy magic number): torch.load can't read it either",
    );
  }
  return at + MAGIC.length;
}

/** ('storage', storage_type, root_key, location, numel, view_metadata) → a StorageRef. */
function legacyStorageRef(file: CheckpointFile, pid: unknown, storageType: StorageTypeOf): StorageRef {
  if (!Array.isArray(pid) || pid.length !== 6 || pid[0] !== 'storage') {
    throw file.error(`persistent id ${show(pid)} is not ('storage', type, key, location, numel, view)`);
  }
  const [, type, key, , numel, view] = pid as unknown[];
  const dtype = storageType(type);
  if (dtype === undefined) throw file.error(`${show(type)} is not a storage type`);
  if (typeof key !== 'string' || !isCount(numel)) {
    throw file.error(`persistent id ${show(pid)} has no usable key or size`);
  }
  if (view === null) return storageRef(key, dtype, numel);
  // PyTorch < 0.4 saved storage views: (view_key, offset, size) into the root storage.
  if (!Array.isArray(view) || view.length !== 3) throw file.error(`storage view ${show(view)} is malformed`);
  const [viewKey, offset, size] = view as unknown[];
  if (typeof viewKey !== 'string' || !isCount(offset) || !isCount(size)) {
    throw file.error(`storage view ${show(view)} is malformed`);
  }
  return storageRef(key, dtype, numel, { key: viewKey, offset, size });
}

interface Root {
  /** File offset of the storage's first byte. */
  start: number;
  bytes: number;
}

/** Walks the storage region: each key's element count (u64 LE), then its bytes, in key-list order. */
async function locateStorages(file: CheckpointFile, parsed: Parsed): Promise<Map<string, Root>> {
  const roots = new Map<string, Root>();
  let at = parsed.end;
  for (const key of parsed.keys) {
    const ref = parsed.refs.get(key);
    if (ref === undefined) throw file.error(`storage ${show(key)} is listed, but no tensor names it`);
    if (roots.has(key)) throw file.error(`storage ${show(key)} is listed twice`);
    const head = new DataView((await file.read(at, 8, `the size of storage ${key}`)).buffer);
    const count = head.getUint32(0, true) + 2 ** 32 * head.getUint32(4, true);
    const bytes = count * ITEM_SIZE[ref.dtype];
    if (!Number.isSafeInteger(bytes) || at + 8 + bytes > file.size) {
      throw file.error(
        `storage ${key} (${count} elements from byte ${at + 8}) runs past the end of the file ` +
          `(${file.size} bytes): the file is truncated`,
      );
    }
    roots.set(key, { start: at + 8, bytes });
    at += 8 + bytes;
  }
  return roots;
}

function storageSource(file: CheckpointFile, roots: Map<string, Root>, ref: StorageRef): StorageSource {
  const root = roots.get(ref.key);
  if (root === undefined) throw file.error(`storage ${show(ref.key)} is not in the file's storage list`);
  const item = ITEM_SIZE[ref.dtype];
  let start = root.start;
  let bytes = root.bytes;
  if (ref.view !== undefined) {
    const { offset, size } = ref.view;
    if ((offset + size) * item > root.bytes) {
      throw file.error(`storage view ${show(ref.view.key)} reaches past its root storage ${show(ref.key)}`);
    }
    start += offset * item;
    bytes = size * item;
  }
  return { bytes, read: (at, length) => file.read(start + at, length, `storage ${ref.key}`) };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
