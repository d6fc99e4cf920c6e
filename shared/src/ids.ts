// Content addresses: an explanation's id is sha256(model version ‖ input tensor frame), the same at the
// edge and in the backend, so a cache keyed by it can never serve another model's answer.
import { encodeFrame, type WireTensor } from './wire';

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export async function sha256Hex(data: Uint8Array): Promise<string> {
  return bytesToHex(new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>)));
}

/** The 32 version bytes, then the tensor's wire frame (dtype and shape included, so reshapes never collide). */
export async function explanationId(modelVersion: string, input: WireTensor | Uint8Array): Promise<string> {
  if (!/^[0-9a-f]{64}$/.test(modelVersion)) throw new Error('model version must be 64 lowercase hex digits');
  const frame = input instanceof Uint8Array ? input : encodeFrame(input);
  const buf = new Uint8Array(32 + frame.length);
  buf.set(hexToBytes(modelVersion), 0);
  buf.set(frame, 32);
  return sha256Hex(buf);
}
