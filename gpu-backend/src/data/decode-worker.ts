// Worker thread of the decode pool: reads, decodes and fits images, sending the pixels back without a copy.
import { parentPort } from 'node:worker_threads';
import type { DecodeReply, DecodeRequest } from './decode-pool';
import { DataError } from './errors';
import { fitImage } from './image';
import { readImage } from './image-node';

const port = parentPort!;
port.on('message', async (job: DecodeRequest) => {
  try {
    const pixels = await readImage(job.file, job.channels);
    const fitted = fitImage(pixels, job, job.resize, job.box);
    port.postMessage({ id: job.id, ok: true, fitted } satisfies DecodeReply, [
      fitted.data.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    const reply: DecodeReply =
      err instanceof DataError
        ? { id: job.id, ok: false, file: err.file, message: err.message.slice(err.file.length + 2) }
        : { id: job.id, ok: false, message: err instanceof Error ? err.message : String(err) };
    port.postMessage(reply);
  }
});
port.postMessage({ ready: true });
