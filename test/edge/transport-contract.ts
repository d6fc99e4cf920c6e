// The contract every Backend transport passes, run against the real backend process.
import { ClassifyOptions, Explanation, ModelManifest, tensor } from '@protopool/shared';
import { describe, expect, inject, it } from 'vitest';
import { type Backend, BackendError } from '../../edge/src/transport/backend';

export const input = (seed: number) =>
  tensor(
    'float32',
    [1, 28, 28, 1],
    Float32Array.from({ length: 784 }, (_, i) => Math.sin(i * 0.37 + seed)),
  );

export function transportContract(
  name: string,
  make: (overrides?: { timeoutMs?: number; dead?: boolean; secret?: string }) => Backend,
) {
  describe(`Backend transport contract: ${name}`, () => {
    it('fetches a valid manifest', async () => {
      const m = ModelManifest.parse(await make().manifest());
      expect(m.input).toMatchObject({ height: 28, width: 28, channels: 1 });
    });

    it('explains a tensor with the requested options, tagged with the manifest version', async () => {
      const backend = make();
      const m = await backend.manifest();
      const e = Explanation.parse(await backend.explain(input(1), ClassifyOptions.parse({ topK: 4 })));
      expect(e.modelVersion).toBe(m.version);
      expect(e.topK).toHaveLength(4);
      expect(e.classes).toHaveLength(1);
      const bare = await backend.explain(input(1), ClassifyOptions.parse({ explain: false, topK: 2 }));
      expect(bare.classes).toEqual([]);
      expect(bare.id).toBe(e.id);
    });

    it("passes the backend's 4xx through with its code and message", async () => {
      const bad = tensor('float32', [1, 28, 27, 1], new Float32Array(28 * 27));
      const err = await make()
        .explain(bad, ClassifyOptions.parse({}))
        .catch((e) => e);
      expect(err).toBeInstanceOf(BackendError);
      expect(err).toMatchObject({
        code: 'bad_request',
        message: expect.stringMatching(/shape must be \[28, 28, 1\]/),
      });
    });

    it('reports a signature the backend refuses as backend_unavailable, not as the client’s fault', async () => {
      const err = await make({ secret: 'not-the-backend-secret' })
        .explain(input(3), ClassifyOptions.parse({}))
        .catch((e) => e);
      expect(err).toBeInstanceOf(BackendError);
      expect(err).toMatchObject({
        code: 'backend_unavailable',
        message: expect.stringMatching(/refused the edge/),
      });
    });

    it('reports an unreachable backend as backend_unavailable', async () => {
      const err = await make({ dead: true })
        .manifest()
        .catch((e) => e);
      expect(err).toBeInstanceOf(BackendError);
      expect(err.code).toBe('backend_unavailable');
    });

    it('reports a slow backend as backend_timeout', async () => {
      const err = await make({ timeoutMs: 1 })
        .explain(input(2), ClassifyOptions.parse({}))
        .catch((e) => e);
      expect(err).toBeInstanceOf(BackendError);
      expect(err.code).toBe('backend_timeout');
    });

    it('forwards each call’s request id and traceparent, which the backend logs', async () => {
      const backend = make();
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const id = (what: string) => `contract.${name.replace(/\W+/g, '-')}.${what}`;
      const m = await backend.manifest({ requestId: id('manifest'), traceparent });
      await backend.explain(input(5), ClassifyOptions.parse({}), { requestId: id('explain'), traceparent });
      await backend.prototypeImage(m.prototypes.find((p) => p.source)!.id, {
        requestId: id('image'),
        traceparent,
      });
      const logged = async (requestId: string) => {
        for (let i = 0; i < 100; i++) {
          const lines = (await (await fetch(inject('backendLogsUrl'))).json()) as string[];
          const line = lines.find(
            (l) => l.includes(`"id":"${requestId}"`) && l.includes('"event":"request"'),
          );
          if (line) return JSON.parse(line) as Record<string, unknown>;
          await new Promise((r) => setTimeout(r, 20));
        }
        return undefined;
      };
      for (const what of ['manifest', 'explain', 'image'])
        expect(await logged(id(what)), what).toMatchObject({ status: 200, traceparent });
    });

    it('fetches PNG bytes of a known prototype and null for an unknown one', async () => {
      const backend = make();
      const m = await backend.manifest();
      const png = await backend.prototypeImage(m.prototypes.find((p) => p.source)!.id);
      expect([...png!.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
      expect(await backend.prototypeImage(999_999)).toBeNull();
    });
  });
}
