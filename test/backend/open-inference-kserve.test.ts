// The KServe manifest runs the backend image as the server expects: its port, its unsigned /v2 probes, its secret.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { oneModel } from '../../gpu-backend/src/server/model-catalog';
import { isOpenInferenceProbe, openInferenceRoutes } from '../../gpu-backend/src/server/open-inference';

const MANIFEST = 'gpu-backend/deploy/kserve/inference-service.yaml';

// The fields this deployment relies on (KServe and Kubernetes accept more; unknown ones pass through).
const Probe = z.object({ httpGet: z.object({ path: z.string(), port: z.number().int() }) });
const Container = z.object({
  name: z.string(),
  image: z.string(),
  args: z.array(z.string()),
  env: z.array(
    z.object({
      name: z.string(),
      value: z.string().optional(),
      valueFrom: z.object({ secretKeyRef: z.object({ name: z.string(), key: z.string() }) }).optional(),
    }),
  ),
  ports: z.array(z.object({ containerPort: z.number().int(), protocol: z.string() })),
  livenessProbe: Probe,
  readinessProbe: Probe,
});
const ServingRuntime = z.object({
  apiVersion: z.string(),
  kind: z.literal('ServingRuntime'),
  metadata: z.object({ name: z.string() }),
  spec: z.object({
    supportedModelFormats: z.array(z.object({ name: z.string() })),
    protocolVersions: z.array(z.string()),
    containers: z.array(Container),
  }),
});
const InferenceService = z.object({
  apiVersion: z.string(),
  kind: z.literal('InferenceService'),
  metadata: z.object({ name: z.string() }),
  spec: z.object({
    predictor: z.object({
      minReplicas: z.number().int(),
      maxReplicas: z.number().int(),
      scaleMetric: z.string(),
      scaleTarget: z.number(),
      model: z.object({
        modelFormat: z.object({ name: z.string() }),
        protocolVersion: z.string(),
        runtime: z.string(),
        storageUri: z.string(),
      }),
    }),
  }),
});

const docs = parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map((d) => {
  expect(d.errors, MANIFEST).toEqual([]);
  return d.toJS() as { apiVersion: string; kind: string };
});
const runtime = ServingRuntime.parse(docs.find((d) => d.kind === 'ServingRuntime'));
const service = InferenceService.parse(docs.find((d) => d.kind === 'InferenceService'));
const container = runtime.spec.containers.find((c) => c.name === 'kserve-container')!;

describe(MANIFEST, () => {
  it('holds a ServingRuntime and an InferenceService of KServe’s API groups', () => {
    expect(docs.map((d) => [d.apiVersion, d.kind])).toEqual([
      ['serving.kserve.io/v1alpha1', 'ServingRuntime'],
      ['serving.kserve.io/v1beta1', 'InferenceService'],
    ]);
  });

  it('serves the model with that runtime over the Open Inference Protocol (protocolVersion v2)', () => {
    const model = service.spec.predictor.model;
    expect(model.protocolVersion).toBe('v2');
    expect(runtime.spec.protocolVersions).toContain('v2');
    expect(model.runtime).toBe(runtime.metadata.name);
    expect(runtime.spec.supportedModelFormats.map((f) => f.name)).toContain(model.modelFormat.name);
    expect(model.storageUri).toMatch(/^[a-z0-9]+:\/\//);
  });

  it('autoscales between a minimum of at least one replica and a larger maximum', () => {
    const { minReplicas, maxReplicas, scaleMetric, scaleTarget } = service.spec.predictor;
    expect(minReplicas).toBeGreaterThanOrEqual(1);
    expect(maxReplicas).toBeGreaterThan(minReplicas);
    expect(['concurrency', 'rps', 'cpu', 'memory']).toContain(scaleMetric);
    expect(scaleTarget).toBeGreaterThan(0);
  });

  it('runs `serve` on the model the storage initializer mounts, on the port the image exposes', () => {
    expect(container.args.slice(0, 3)).toEqual(['serve', '--model', '/mnt/models']);
    const exposed = readFileSync('gpu-backend/deploy/Dockerfile', 'utf8').match(/^EXPOSE (\d+)$/m)![1];
    expect(container.ports).toEqual([{ containerPort: Number(exposed), protocol: 'TCP' }]);
  });

  it('takes PROTOPOOL_HMAC_SECRET from a Secret, never a literal value', () => {
    const env = container.env.find((e) => e.name === 'PROTOPOOL_HMAC_SECRET')!;
    expect(env.value).toBeUndefined();
    expect(env.valueFrom?.secretKeyRef).toEqual({ name: expect.any(String), key: expect.any(String) });
  });

  it('probes routes the server answers without a signature: live at once, ready only once the model loads', async () => {
    const { livenessProbe, readinessProbe } = container;
    expect(livenessProbe.httpGet).toEqual({
      path: '/v2/health/live',
      port: container.ports[0]!.containerPort,
    });
    expect(readinessProbe.httpGet).toEqual({
      path: '/v2/health/ready',
      port: container.ports[0]!.containerPort,
    });
    const loading = openInferenceRoutes({ models: oneModel('model', () => undefined), engine: 'wasm' });
    for (const [probe, status] of [
      [livenessProbe, 200],
      [readinessProbe, 400],
    ] as const) {
      expect(isOpenInferenceProbe('GET', probe.httpGet.path)).toBe(true);
      // Kubernetes counts 200–399 as success: a loading model must fail readiness but not liveness.
      expect((await loading.request(probe.httpGet.path)).status).toBe(status);
    }
  });
});
