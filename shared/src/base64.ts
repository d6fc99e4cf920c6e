// Strict RFC 4648 base64 for byte arrays, identical in Node and workerd (no Buffer, no atob limits).
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ENCODE = Uint8Array.from(ALPHABET, (ch) => ch.charCodeAt(0));
const PAD = 61; // '='
const DECODE = new Int16Array(256).fill(-1);
for (let i = 0; i < ENCODE.length; i++) DECODE[ENCODE[i]!] = i;

/** ASCII bytes to a string, in chunks small enough for the argument limit of String.fromCharCode. */
function asciiString(bytes: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i += 8192) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]));
  }
  return parts.join('');
}

export function encodeBase64(bytes: Uint8Array): string {
  // Work on byte buffers, not strings: per-character string building is ~100x slower on tensors.
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  const full = bytes.length - (bytes.length % 3);
  let o = 0;
  for (let i = 0; i < full; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = ENCODE[n >>> 18]!;
    out[o++] = ENCODE[(n >>> 12) & 63]!;
    out[o++] = ENCODE[(n >>> 6) & 63]!;
    out[o++] = ENCODE[n & 63]!;
  }
  const rest = bytes.length - full;
  if (rest > 0) {
    const n = (bytes[full]! << 16) | (rest === 2 ? bytes[full + 1]! << 8 : 0);
    out[o++] = ENCODE[n >>> 18]!;
    out[o++] = ENCODE[(n >>> 12) & 63]!;
    out[o++] = rest === 2 ? ENCODE[(n >>> 6) & 63]! : PAD;
    out[o++] = PAD;
  }
  return asciiString(out);
}

/** Decodes canonical base64 (padding required); returns null instead of guessing on bad input. */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  const chars = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 127) return null;
    chars[i] = code;
  }
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((chars.length / 4) * 3 - padding);
  const body = padding ? chars.length - 4 : chars.length;
  let o = 0;
  for (let i = 0; i < body; i += 4) {
    const n = (DECODE[chars[i]!]! << 18) | (DECODE[chars[i + 1]!]! << 12) | (DECODE[chars[i + 2]!]! << 6);
    const d = DECODE[chars[i + 3]!]!;
    // Any invalid character makes its sextet -1, which sets the sign bit of the OR.
    if ((n | d) < 0) return null;
    const v = n | d;
    out[o++] = v >>> 16;
    out[o++] = (v >>> 8) & 255;
    out[o++] = v & 255;
  }
  if (padding) {
    const c0 = DECODE[chars[body]!]!;
    const c1 = DECODE[chars[body + 1]!]!;
    const c2 = padding === 2 ? 0 : DECODE[chars[body + 2]!]!;
    if (c0 < 0 || c1 < 0 || c2 < 0) return null;
    // Non-canonical encodings (stray bits in the padded group) are refused so decode∘encode is a bijection.
    if ((padding === 2 && (c1 & 15) !== 0) || (padding === 1 && (c2 & 3) !== 0)) return null;
    const n = (c0 << 18) | (c1 << 12) | (c2 << 6);
    out[o++] = n >>> 16;
    if (padding === 1) out[o++] = (n >>> 8) & 255;
  }
  return out;
}
