// The contract package is pure: this suite runs in both the Node and the workerd project.
import { decodeFrame, encodeFrame, tensor } from '@protopool/shared';
import { describe, expect, it } from 'vitest';

const agent = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent ?? 'node';

describe(`shared contract under ${agent}`, () => {
  it('imports and round-trips a frame with no runtime-specific API', () => {
    const t = tensor('float32', [2], new Float32Array([1.5, -2]));
    expect(decodeFrame(encodeFrame(t))).toEqual(t);
    expect(['node', 'Cloudflare-Workers']).toContain(agent.startsWith('Node.js') ? 'node' : agent);
  });
});
