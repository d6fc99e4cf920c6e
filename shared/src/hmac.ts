// Edge → backend request signing, the exact scheme other clients implement:
//   X-ProtoPool-Timestamp: <unix seconds>
//   X-ProtoPool-Signature: v1=<hex HMAC-SHA256(secret, timestamp "\n" METHOD "\n" path "\n" hex SHA-256(body))>
// `path` is the request target as sent: the URL path plus "?query" when there is one.
import { bytesToHex, hexToBytes, sha256Hex } from './ids';

export const TIMESTAMP_HEADER = 'X-ProtoPool-Timestamp';
export const SIGNATURE_HEADER = 'X-ProtoPool-Signature';
export const MAX_CLOCK_SKEW_SECONDS = 300;

export interface SignedRequest {
  method: string;
  /** Path plus query, e.g. "/invocations?topK=5". */
  path: string;
  body: Uint8Array;
}

export async function canonicalString(timestamp: string, r: SignedRequest): Promise<string> {
  return `${timestamp}\n${r.method.toUpperCase()}\n${r.path}\n${await sha256Hex(r.body)}`;
}

function hmacKey(secret: string, usage: 'sign' | 'verify') {
  return crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    usage === 'sign' ? ['sign'] : ['verify'],
  );
}

export async function signature(secret: string, timestamp: string, r: SignedRequest): Promise<string> {
  const enc = new TextEncoder();
  const key = await hmacKey(secret, 'sign');
  const mac = await crypto.subtle.sign('HMAC', key, enc.encode(await canonicalString(timestamp, r)));
  return `v1=${bytesToHex(new Uint8Array(mac))}`;
}

/** Headers to add to a request. */
export async function signRequest(
  secret: string,
  r: SignedRequest,
  now = Date.now(),
): Promise<Record<string, string>> {
  const ts = String(Math.floor(now / 1000));
  return { [TIMESTAMP_HEADER]: ts, [SIGNATURE_HEADER]: await signature(secret, ts, r) };
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export async function verifyRequest(
  secret: string,
  headers: { timestamp: string | null | undefined; signature: string | null | undefined },
  r: SignedRequest,
  now = Date.now(),
): Promise<VerifyResult> {
  const { timestamp, signature: given } = headers;
  if (!timestamp || !given)
    return { ok: false, reason: `missing ${TIMESTAMP_HEADER} or ${SIGNATURE_HEADER} header` };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: `${TIMESTAMP_HEADER} must be unix seconds` };
  const skew = Math.abs(Math.floor(now / 1000) - Number(timestamp));
  if (skew > MAX_CLOCK_SKEW_SECONDS) {
    return {
      ok: false,
      reason: `stale or future timestamp (${skew} s from server time; at most ${MAX_CLOCK_SKEW_SECONDS})`,
    };
  }
  // WebCrypto's verify compares the MACs itself, in constant time; a malformed value cannot match either.
  const mac = /^v1=([0-9a-f]{64})$/.exec(given);
  const ok =
    mac !== null &&
    (await crypto.subtle.verify(
      'HMAC',
      await hmacKey(secret, 'verify'),
      hexToBytes(mac[1]!) as Uint8Array<ArrayBuffer>,
      new TextEncoder().encode(await canonicalString(timestamp, r)),
    ));
  return ok ? { ok: true } : { ok: false, reason: 'signature does not match' };
}
