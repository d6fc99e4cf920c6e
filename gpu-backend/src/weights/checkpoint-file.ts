// An open checkpoint file read by position: exact reads that fail (never wait) at the end of the file.
//
// Every reader goes through `read`, so a truncated file, a length field that points past the end and a
// read after `close()` all end in a CheckpointError naming the file, and no caller loops on a short read.
import { type FileHandle, open } from 'node:fs/promises';
import { CheckpointError } from './state-dict';

/** One `fs.read` moves at most this many bytes, so a single tensor's data is limited to it (2 GiB − 1). */
export const MAX_READ_BYTES = 2 ** 31 - 1;

export class CheckpointFile {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    /** Bytes in the file when it was opened; reads past it are refused. */
    readonly size: number,
  ) {}

  static async open(path: string): Promise<CheckpointFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      throw new CheckpointError(path, `cannot open: ${(err as Error).message}`);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new CheckpointError(path, 'not a regular file');
      return new CheckpointFile(path, handle, stat.size);
    } catch (err) {
      await handle.close();
      if (err instanceof CheckpointError) throw err;
      throw new CheckpointError(path, `cannot read: ${(err as Error).message}`);
    }
  }

  /** The OS descriptor, for yauzl's central-directory reads (it never closes it: `close()` does). */
  get fd(): number {
    return this.handle.fd;
  }

  /** A CheckpointError about this file. */
  error(detail: string, key?: string): CheckpointError {
    return new CheckpointError(this.path, detail, key);
  }

  /**
   * Exactly `length` bytes from `position`, in a fresh buffer of their own (offset 0, so typed-array
   * views on it are aligned). `what` names the bytes in the error if they run past the end.
   */
  async read(position: number, length: number, what: string): Promise<Uint8Array> {
    if (this.closed) throw this.error(`read of ${what} after close()`);
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0) {
      throw this.error(`${what}: impossible range ${position}+${length}`);
    }
    if (position + length > this.size) {
      throw this.error(
        `${what} runs past the end of the file (bytes ${position}..${position + length} of ${this.size}): ` +
          'the file is truncated or corrupt',
      );
    }
    if (length > MAX_READ_BYTES) throw this.error(`${what} is ${length} bytes: more than one read allows`);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(out, done, length - done, position + done));
      } catch (err) {
        throw this.error(`reading ${what}: ${(err as Error).message}`);
      }
      // The file shrank since it was opened: stop rather than ask again for bytes that will not come.
      if (bytesRead === 0) throw this.error(`${what}: the file ends at byte ${position + done}`);
      done += bytesRead;
    }
    return out;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
