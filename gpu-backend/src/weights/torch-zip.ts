// torch.save's zip format (PyTorch ≥ 1.6): a pickle naming storages by key, each storage a zip entry.
//
//   <archive>/data.pkl      the pickled object; a tensor's storage is the persistent id
//                           ('storage', torch.<T>Storage, key, location, numel)
//   <archive>/data/<key>    the storage's raw little-endian bytes (stored, 64-byte aligned by torch)
//   <archive>/version, <archive>/byteorder ("little"; PyTorch ≥ 2.1 only)
// The archive folder is the saved file's stem in newer PyTorch ("archive" in older), so it is taken from
// the first entry. yauzl reads only the central directory (ZIP64 included) and the local headers; stored
// tensor data is then read straight from the file at its offset, a deflated entry is inflated when read.
import { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import type { CheckpointFile } from './checkpoint-file';
import { show } from './layout';
import { CheckpointError } from './state-dict';
import type { StorageSource } from './tensor-entry';
import {
  MAX_PICKLE_BYTES,
  type PickledCheckpoint,
  type StorageRef,
  type StorageTypeOf,
  storageRef,
  unpickle,
} from './torch-pickle';

/** torch writes a handful of entries per tensor storage; millions means a corrupt directory. */
const MAX_ENTRIES = 1_000_000;
/** Deflated entries are streamed to the inflater in pieces of this size. */
const STREAM_CHUNK = 1024 * 1024;

export async function openTorchZip(file: CheckpointFile): Promise<PickledCheckpoint> {
  const zip = await zipCall(file, 'the zip directory', () =>
    yauzl.fromRandomAccessReaderPromise(new FileReader(file), file.size, {
      lazyEntries: true,
      autoClose: false,
      validateEntrySizes: true,
    }),
  );
  // yauzl reports late failures as 'error' events; an unheard one would crash the process.
  zip.on('error', () => {});
  try {
    return await readArchive(file, zip);
  } catch (err) {
    zip.close();
    throw err;
  }
}

async function readArchive(file: CheckpointFile, zip: ZipFile): Promise<PickledCheckpoint> {
  if (zip.entryCount > MAX_ENTRIES) throw file.error(`a zip directory of ${zip.entryCount} entries`);
  const entries = await listEntries(file, zip);
  const first = entries.keys().next().value;
  const slash = first?.indexOf('/') ?? -1;
  if (first === undefined || slash <= 0) {
    throw file.error(`a zip, but not torch.save's: the first entry ${show(first ?? '')} is not in a folder`);
  }
  const archive = first.slice(0, slash);
  const pkl = entries.get(`${archive}/data.pkl`);
  if (pkl === undefined) throw file.error(`a zip, but not torch.save's: no ${archive}/data.pkl`);

  const byteorder = entries.get(`${archive}/byteorder`);
  if (byteorder !== undefined) {
    const order = new TextDecoder().decode(await entryBytes(file, zip, byteorder, 16)).trim();
    if (order !== 'little')
      throw file.error(`saved with byteorder ${show(order)}: only little-endian is read`);
  }

  const pickle = await entryBytes(file, zip, pkl, MAX_PICKLE_BYTES);
  const { value: top } = unpickle(pickle, 0, {
    file: file.path,
    what: 'data.pkl',
    persistent: zipStorageRef(file),
  });

  const sources = new Map<string, Promise<StorageSource>>();
  return {
    top,
    storage(ref) {
      let source = sources.get(ref.key);
      if (source === undefined) {
        source = storageSource(file, zip, entries.get(`${archive}/data/${ref.key}`), ref);
        sources.set(ref.key, source);
      }
      return source;
    },
    async close() {
      zip.close();
    },
  };
}

/** ('storage', storage_type, key, location, numel) → a StorageRef; anything else is refused. */
function zipStorageRef(file: CheckpointFile) {
  return (pid: unknown, storageType: StorageTypeOf): StorageRef => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      throw file.error(`data.pkl: persistent id ${show(pid)} is not ('storage', type, key, location, numel)`);
    }
    const [, type, key, , numel] = pid as unknown[];
    const dtype = storageType(type);
    if (dtype === undefined) throw file.error(`data.pkl: ${show(type)} is not a storage type`);
    if (typeof key !== 'string' || !Number.isSafeInteger(numel) || (numel as number) < 0) {
      throw file.error(`data.pkl: persistent id ${show(pid)} has no usable key or size`);
    }
    return storageRef(key, dtype, numel as number);
  };
}

async function storageSource(
  file: CheckpointFile,
  zip: ZipFile,
  entry: Entry | undefined,
  ref: StorageRef,
): Promise<StorageSource> {
  if (entry === undefined)
    throw file.error(`storage ${show(ref.key)} has no data/${ref.key} entry in the zip`);
  const size = entry.uncompressedSize;
  if (entry.isEncrypted()) throw file.error(`${entry.fileName} is encrypted`);
  if (entry.compressionMethod === 0) {
    const start = await dataStart(file, zip, entry);
    if (start + size > file.size) throw file.error(`${entry.fileName} runs past the end of the file`);
    return { bytes: size, read: (at, length) => file.read(start + at, length, entry.fileName) };
  }
  if (entry.compressionMethod !== 8) {
    throw file.error(
      `${entry.fileName} uses compression method ${entry.compressionMethod} (only stored or deflated)`,
    );
  }
  // Deflate has no random access: the entry is inflated whole for each read (torch never compresses).
  return {
    bytes: size,
    read: async (at, length) => (await entryBytes(file, zip, entry, size)).slice(at, at + length),
  };
}

function listEntries(file: CheckpointFile, zip: ZipFile): Promise<Map<string, Entry>> {
  return zipCall(
    file,
    'the zip directory',
    () =>
      new Promise<Map<string, Entry>>((resolve, reject) => {
        const entries = new Map<string, Entry>();
        zip.on('entry', (entry: Entry) => {
          // Directories and duplicate names carry no storage: the first of each name is kept.
          if (!entries.has(entry.fileName)) entries.set(entry.fileName, entry);
          zip.readEntry();
        });
        zip.once('end', () => resolve(entries));
        zip.once('error', reject);
        zip.readEntry();
      }),
  );
}

async function dataStart(file: CheckpointFile, zip: ZipFile, entry: Entry): Promise<number> {
  const header = await zipCall(file, entry.fileName, () =>
    zip.readLocalFileHeaderPromise(entry, { minimal: true }),
  );
  return header.fileDataStart;
}

/** A whole entry's bytes (at most `limit` of them): stored ones read directly, deflated ones inflated. */
async function entryBytes(
  file: CheckpointFile,
  zip: ZipFile,
  entry: Entry,
  limit: number,
): Promise<Uint8Array> {
  if (entry.uncompressedSize > limit) {
    throw file.error(`${entry.fileName} is ${entry.uncompressedSize} bytes (at most ${limit} are read)`);
  }
  if (entry.compressionMethod === 0 && !entry.isEncrypted()) {
    return file.read(await dataStart(file, zip, entry), entry.uncompressedSize, entry.fileName);
  }
  if (file.isClosed) throw file.error(`read of ${entry.fileName} after close()`);
  return zipCall(file, entry.fileName, async () => collect(await zip.openReadStreamPromise(entry), limit));
}

async function collect(stream: Readable, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      if (total > limit) throw new Error(`more than ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  } finally {
    stream.destroy();
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * yauzl reads through the CheckpointFile (exact, bounded reads) rather than its own fd reader, whose
 * `close()` would close the descriptor under the FileHandle that owns it.
 */
class FileReader extends yauzl.RandomAccessReader {
  constructor(private readonly file: CheckpointFile) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const file = this.file;
    return Readable.from(
      (async function* () {
        for (let at = start; at < end; at += STREAM_CHUNK) {
          yield Buffer.from((await file.read(at, Math.min(STREAM_CHUNK, end - at), 'zip data')).buffer);
        }
      })(),
    );
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    // yauzl's callback also takes the byte count (its typings omit it); a short read is already an error.
    const done = callback as (err: Error | null, bytesRead?: number) => void;
    this.file.read(position, length, 'the zip directory').then(
      (bytes) => {
        buffer.set(bytes, offset);
        done(null, length);
      },
      (err: Error) => done(err),
    );
  }

  override close(callback: (err: Error | null) => void): void {
    setImmediate(() => callback(null)); // the CheckpointFile owns the handle
  }
}

/** yauzl's errors (bad signatures, sizes, inflate failures) as CheckpointErrors naming the file. */
async function zipCall<T>(file: CheckpointFile, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw file.error(`not a readable torch zip (${what}): ${(err as Error).message}`);
  }
}
