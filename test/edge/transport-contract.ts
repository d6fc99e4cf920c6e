// The contract every Backend transport passes, run against the real backend process (two models served).
import {
  ClassifyOptions,
  decodeBase64,
  Explanation,
  explanationId,
  ModelList,
  ModelManifest,
  tensor,
} from '@protopool/shared';
import { describe, expect, inject, it } from 'vitest';
import { type Backend, BackendError } from '../../edge/src/transport/backend';

export const input = (seed: number) =>
  tensor(
    'float32',
    [1, 28, 28, 1],
    Float32Array.from({ length: 784 }, (_, i) => Math.sin(i * 0.37 + seed)),
  );

/** A deterministic input of any model's size. */
export const inputOf = (spec: { height: number; width: number; channels: number }, seed: number) => {
  const n = spec.height * spec.width * spec.channels;
  return tensor(
    'float32',
    [1, spec.height, spec.width, spec.channels],
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed)),
  );
};

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

    describe('several models', () => {
      const served = inject('servedModels').models;
      const [first, second] = [served[0]!, served[1]!];

      it('lists the served models, the first one the default, as their own files say', async () => {
        const list = ModelList.parse(await make().models());
        expect(list.default).toBe(first.name);
        expect(list.models.map((m) => [m.name, m.version, m.classes, m.input])).toEqual(
          served.map((m) => [m.name, m.version, m.classes, m.input]),
        );
      });

      it('reads the named model’s manifest, and the default’s without a name', async () => {
        const backend = make();
        expect((await backend.manifest(undefined, second.name)).version).toBe(second.version);
        expect((await backend.manifest(undefined, first.name)).version).toBe(first.version);
        const bare = await backend.manifest();
        expect([bare.version, bare.classes]).toEqual([first.version, first.classes]);
      });

      it('explains with the named model: its version, its classes, its input size', async () => {
        const backend = make();
        const t = inputOf(second.input, 7);
        const topK = second.classes.length;
        const e = await backend.explain(t, ClassifyOptions.parse({ topK }), undefined, second.name);
        expect(e.modelVersion).toBe(second.version);
        expect(e.id).toBe(await explanationId(second.version, t));
        expect(e.topK.map((k) => k.label).sort()).toEqual([...second.classes].sort());
        // The default model refuses the other model's input size: the name really chose the model.
        const refused = await backend.explain(t, ClassifyOptions.parse({})).catch((err) => err);
        expect(refused).toMatchObject({ code: 'bad_request' });
      });

      it('fetches the named model’s prototype image, the bytes of its file', async () => {
        const backend = make();
        const png = await backend.prototypeImage(second.prototype.id, undefined, second.name);
        expect(png).toEqual(decodeBase64(second.prototype.png));
        const own = await backend.prototypeImage(first.prototype.id, undefined, first.name);
        expect(own).toEqual(decodeBase64(first.prototype.png));
      });

      it("passes the backend's 404 for an unknown model through, naming the served ones", async () => {
        const backend = make();
        const failures = [
          await backend.manifest(undefined, 'no-such-model').catch((e) => e),
          await backend
            .explain(input(1), ClassifyOptions.parse({}), undefined, 'no-such-model')
            .catch((e) => e),
        ];
        for (const err of failures) {
          expect(err).toBeInstanceOf(BackendError);
          expect(err.code).toBe('not_found');
          expect(err.message).toContain('"no-such-model"');
          for (const m of served) expect(err.message).toContain(m.name);
        }
      });
    });
  });
}
