// Reader for the IDX format (MNIST, Fashion-MNIST), gzip or plain, with errors naming file and field.
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DataError } from './errors';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Reads an unsigned-byte IDX file (magic 0x00000801 labels, 0x00000803 images). */
export async function readIdx(file: string, expectedRank: 1 | 3): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new DataError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new DataError(file, `corrupt gzip data (${(err as Error).message})`);
    }
  }
  if (bytes.length < 4) throw new DataError(file, `header: truncated (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw new DataError(file, 'header.magic: first two bytes must be 0');
  if (bytes[2] !== 0x08)
    throw new DataError(file, `header.type: 0x${bytes[2]!.toString(16)} is not unsigned byte (0x08)`);
  const rank = bytes[3]!;
  if (rank !== expectedRank) throw new DataError(file, `header.rank: ${rank}, expected ${expectedRank}`);
  const header = 4 + 4 * rank;
  if (bytes.length < header) throw new DataError(file, 'header.dims: truncated');
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - header !== expected) {
    throw new DataError(
      file,
      `data: dims [${dims.join(', ')}] need ${expected} bytes, file has ${bytes.length - header}`,
    );
  }
  return { dims, data: bytes.subarray(header) };
}
