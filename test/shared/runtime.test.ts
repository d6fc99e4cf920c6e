// The contract package is pure: this suite runs in both the Node and the workerd project, and checks that
// each Web-platform global shared/src/runtime.d.ts relies on behaves as its specification says here.
import { decodeFrame, encodeFrame, sha256Hex, tensor } from '@protopool/shared';
import { describe, expect, it } from 'vitest';

const agent = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent ?? 'node';

describe(`the Web platform under ${agent}`, () => {
  it('hashes with crypto.subtle as FIPS 180-2 says (SHA-256 of "abc")', async () => {
    expect(await sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('encodes and decodes UTF-8 (TextEncoder, TextDecoder)', () => {
    const bytes = new TextEncoder().encode('é€𝄞');
    expect([...bytes]).toEqual([0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9d, 0x84, 0x9e]);
    expect(new TextDecoder().decode(bytes)).toBe('é€𝄞');
  });

  it('writes and reads query strings as the URL standard says (URLSearchParams)', () => {
    expect(new URLSearchParams({ a: 'b c', 'k&': '=' }).toString()).toBe('a=b+c&k%26=%3D');
    expect(Object.fromEntries(new URLSearchParams('topK=5&explain=0&x=%2B'))).toEqual({
      topK: '5',
      explain: '0',
      x: '+',
    });
    const q = new URLSearchParams('a=1&rid=x&b=2');
    q.delete('rid');
    q.set('a', '3');
    q.set('c', 'd e');
    expect(q.toString()).toBe('a=3&b=2&c=d+e');
  });

  it('makes random version-4 UUIDs (crypto.randomUUID, RFC 9562)', () => {
    const ids = Array.from({ length: 8 }, () => crypto.randomUUID());
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(8);
  });

  it('parses a multipart body (Response.formData), the file with its type', async () => {
    const body = new TextEncoder().encode(
      '--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nPNG!\r\n--b--\r\n',
    );
    const form = await new Response(body, {
      headers: { 'content-type': 'multipart/form-data; boundary=b' },
    }).formData();
    const file = form.get('image') as unknown as Blob;
    expect(file.type).toBe('image/png');
    expect(new TextDecoder().decode(await file.arrayBuffer())).toBe('PNG!');
  });

  it('round-trips a frame byte for byte as wire.ts specifies it', () => {
    const t = tensor('float32', [2], new Float32Array([1.5, -2]));
    const frame = encodeFrame(t);
    // "PPTF", version 1, float32 (1), rank 1, flags 0, dim 2 (u32 LE), then 1.5 and -2 as f32 LE.
    expect([...frame]).toEqual([
      0x50, 0x50, 0x54, 0x46, 1, 1, 1, 0, 2, 0, 0, 0, 0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0,
    ]);
    expect(decodeFrame(frame)).toEqual(t);
  });
});
