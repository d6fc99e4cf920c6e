// Opens a PyTorch checkpoint (.pt/.pth zip or legacy, or .safetensors) as a lazily read StateDict.
//
// The format is sniffed from the first bytes, never the file name:
//   "PK\x03\x04"                      torch zip (torch.save, PyTorch ≥ 1.6)          → torch-zip.ts
//   u64 LE length, then "{" at byte 8  safetensors                                  → safetensors.ts
//   0x80 0x02 (a pickle, protocol 2)   legacy torch.save (protocols 3–5 accepted too)   → torch-legacy.ts
// A pickled file is then unwrapped (unwrap.ts): a bare state dict, or one under "state_dict" or "model"
// beside other training state, with DataParallel's "module." removed when every key has it.
// Opening reads only the directory, the pickles or the header, and checks every tensor's layout against
// the bytes the file holds; tensor data is read when an entry's `read()` is called.
//
// Every failure is a CheckpointError naming the file (and the key, where there is one): unknown formats,
// truncation, malformed pickles/zips/headers, globals outside the state-dict registry (torch-pickle.ts),
// storages shorter than their tensors. The file handle is released on failure and by `close()`.
import { CheckpointFile } from './checkpoint-file';
import { readSafetensors } from './safetensors';
import { CheckpointError, type StateDict, type TensorEntry } from './state-dict';
import { tensorEntry } from './tensor-entry';
import { openTorchLegacy } from './torch-legacy';
import { guarded, type PickledCheckpoint } from './torch-pickle';
import { openTorchZip } from './torch-zip';
import { findStateDict, stripDataParallel } from './unwrap';

export type CheckpointFormat = StateDict['format'];

export async function readCheckpoint(path: string): Promise<StateDict> {
  const file = await CheckpointFile.open(path);
  let release = () => file.close();
  try {
    const format = sniff(file, await file.read(0, Math.min(file.size, 16), 'the first bytes'));
    if (format === 'safetensors') {
      return { file: path, format, entries: await safetensorsEntries(file), close: release };
    }
    const checkpoint = format === 'torch-zip' ? await openTorchZip(file) : await openTorchLegacy(file);
    release = async () => {
      await checkpoint.close();
      await file.close();
    };
    return { file: path, format, entries: await pickledEntries(file, checkpoint), close: release };
  } catch (err) {
    await release();
    throw err;
  }
}

/** The format from the first bytes, or a CheckpointError showing them. */
export function sniff(file: CheckpointFile, head: Uint8Array): CheckpointFormat {
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'torch-zip';
  // A safetensors length whose low bytes happen to read 0x80 0x02 still has "{" at byte 8; a legacy file
  // has its magic number there.
  if (head.length > 8 && head[8] === 0x7b) return 'safetensors';
  if (head[0] === 0x80 && head[1] !== undefined && head[1] >= 2 && head[1] <= 5) return 'torch-legacy';
  throw file.error(
    head.length === 0
      ? 'the file is empty'
      : `not a PyTorch checkpoint (.pt/.pth zip or legacy) or .safetensors file: starts with ${describe(head)}`,
  );
}

/** The first bytes as hex and, where printable, text: `47 49 46 38 39 61 01 00 ("GIF89a..")`. */
function describe(head: Uint8Array): string {
  const bytes = head.subarray(0, 8);
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  return `${hex} (${JSON.stringify(text)})`;
}

async function pickledEntries(
  file: CheckpointFile,
  checkpoint: PickledCheckpoint,
): Promise<Map<string, TensorEntry>> {
  const found = guarded(file.path, 'the checkpoint', () => findStateDict(checkpoint.top));
  if ('found' in found) throw file.error(`holds no tensors to read: ${found.found}`);
  const entries = new Map<string, TensorEntry>();
  for (const [key, ref] of stripDataParallel(found.tensors)) {
    const storage = await checkpoint.storage(ref.storage).catch((err: unknown) => {
      // Storages are shared between tensors, so their errors name the key here.
      throw err instanceof CheckpointError && err.key === undefined ? file.error(err.detail, key) : err;
    });
    entries.set(key, tensorEntry(file.path, key, { ...ref, dtype: ref.storage.dtype }, storage));
  }
  return entries;
}

async function safetensorsEntries(file: CheckpointFile): Promise<Map<string, TensorEntry>> {
  const tensors = await readSafetensors(file);
  const named = stripDataParallel(tensors.map((t): [string, typeof t] => [t.key, t]));
  return new Map(named.map(([key, t]) => [key, tensorEntry(file.path, key, t.spec, t.storage)]));
}
