// `npm start`: the main job — for now, what the project can do on a fresh clone, run for real.
import { decodeFrame, encodeFrame, tensor } from '@protopool/shared';

function say(line: string): void {
  console.log(`[protopool] ${line}`);
}

try {
  say('ProtoPool at the edge: interpretable image classification (prototype parts) as an edge API.');
  const t = tensor('float32', [1, 28, 28, 1], new Float32Array(784).fill(0.5));
  const frame = encodeFrame(t);
  const back = decodeFrame(frame);
  say(
    `shared contract ok: a 1×28×28×1 tensor round-trips through a ${frame.length}-byte wire frame (${back.dtype}).`,
  );
  say('Not yet available: training, the backend service and the edge API are being built (see README).');
} catch (err) {
  console.error(`[protopool] start failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
