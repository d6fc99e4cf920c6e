// The ProtoPool head matches test vectors computed with the authors' PyTorch code, to 1e-4.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import {
  gumbelAssignment,
  gumbelScale,
  hardAssignment,
  softAssignment,
} from '../../gpu-backend/src/model/assignment';
import { ProtoPoolHead } from '../../gpu-backend/src/model/head';
import {
  clusterLoss,
  crossEntropy,
  DEFAULT_LOSS_WEIGHTS,
  lastLayerL1,
  orthogonalityLoss,
  separationLoss,
} from '../../gpu-backend/src/model/losses';
import { focalSimilarity, poolDistances, squaredDistances } from '../../gpu-backend/src/model/similarity';
import golden from '../fixtures/protopool-head.json';

const { B, C, M, K, D, H, W } = golden.dims;
const inp = golden.inputs;
const out = golden.outputs;

function expectClose(actual: tf.Tensor | number, expected: unknown, tol = 1e-4) {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual.dataSync());
  const e = [expected].flat(5) as number[];
  expect(a.length).toBe(e.length);
  const worst = Math.max(...a.map((v, i) => Math.abs(v - e[i]!)));
  expect(worst).toBeLessThan(tol);
}

describe.each(['wasm', 'cpu'])('ProtoPool head on %s vs the reference code', (engine) => {
  let head: ProtoPoolHead;
  let z: tf.Tensor4D;
  let labels: tf.Tensor1D;
  let start: number;

  beforeAll(async () => {
    await initEngine('wasm');
    await tf.setBackend(engine);
    start = tf.memory().numTensors;
    z = tf.tensor4d(inp.z_nhwc.flat(3), [B, H, W, D]);
    labels = tf.tensor1d(inp.labels, 'int32');
    const init = [
      tf.tensor2d(inp.prototypes_MxD),
      tf.tensor3d(inp.slot_logits_CxMxK),
      tf.tensor2d(inp['last_layer_Cx(CK)']),
    ] as const;
    head = new ProtoPoolHead(
      {
        classes: C,
        prototypes: M,
        slotsPerClass: K,
        depth: D,
        focal: 'reference',
        eps: golden.eps,
        tau: golden.tau,
      },
      tf.variable(init[0]),
      tf.variable(init[1]),
      tf.variable(init[2]),
    );
    tf.dispose([...init]);
  });

  afterAll(async () => {
    tf.dispose([z, labels]);
    head.dispose();
    await tf.setBackend('wasm');
  });

  it('squared distances and their min/mean over positions', () => {
    tf.tidy(() => {
      const d = squaredDistances(z, head.prototypes);
      expectClose(d, out.sq_distances_BxHxWxM);
      const pooled = poolDistances(d);
      expectClose(pooled.min, out.min_distances_BxM);
      expectClose(pooled.mean, out.mean_distances_BxM);
    });
  });

  it('slot assignment: softmax, Gumbel-softmax with the given noise and scale, hard map', () => {
    tf.tidy(() => {
      expectClose(softAssignment(head.slotLogits), out.assignment_softmax_CxMxK);
      const noise = tf.tensor3d(inp.gumbel_noise_CxMxK);
      expectClose(
        gumbelAssignment(head.slotLogits, golden.gumbel_scale, noise, golden.tau),
        out.assignment_gumbel_CxMxK,
      );
    });
    expect(hardAssignment(head.slotLogits)).toEqual(out.hard_assignment_CxK);
  });

  it('focal similarity (reference and paper forms) and logits', () => {
    tf.tidy(() => {
      const q = head.assignment({ kind: 'soft' });
      const result = head.forward(z, q);
      expectClose(result.focal, out.focal_similarity_reference_BxCxK);
      expectClose(result.logits, out.logits_BxC);
      const pooled = { min: result.minDistances, mean: result.meanDistances };
      expectClose(
        focalSimilarity('paper', result.distances, pooled, q),
        out.paper_variant_focal_similarity_BxCxK,
      );
    });
  });

  it('every loss and the weighted total', () => {
    tf.tidy(() => {
      const q = head.assignment({ kind: 'soft' });
      const r = head.forward(z, q);
      const ce = crossEntropy(r.logits, labels).dataSync()[0]!;
      const ortho = orthogonalityLoss(head.slotLogits).dataSync()[0]!;
      const clst = clusterLoss(r.minDistances, q, labels, D).dataSync()[0]!;
      const sep = separationLoss(r.minDistances, q, labels, D).dataSync()[0]!;
      const l1 = lastLayerL1(head.lastLayer, head.identity).dataSync()[0]!;
      const l = out.losses;
      expectClose(ce, l.ce);
      expectClose(ortho, l.ortho);
      expectClose(clst, l.clst);
      expectClose(sep, l.sep);
      expectClose(l1, l.l1);
      const w = DEFAULT_LOSS_WEIGHTS;
      expectClose(w.ce * ce + w.clst * clst + w.sep * sep + w.l1 * l1 + w.ortho * ortho, l.total);
    });
  });

  it('leaves no tensor behind', () => {
    tf.tidy(() => {
      head.forward(z, head.assignment({ kind: 'inference' }));
    });
    expect(tf.memory().numTensors).toBe(start + 6); // z, labels, three variables, the identity mask
  });
});

describe('Gumbel scale schedule', () => {
  it('grows as 1000·sqrt(e/T) and then stays at 1000', () => {
    expect(gumbelScale(0, 30)).toBe(0);
    expect(gumbelScale(3, 30)).toBeCloseTo(1000 * Math.sqrt(0.1), 9);
    expect(gumbelScale(30, 30)).toBe(1000);
    expect(gumbelScale(45, 30)).toBe(1000);
    // The golden vectors' scale is the schedule's value at e/T = 0.1.
    expect(gumbelScale(1, 10)).toBeCloseTo(golden.gumbel_scale, 9);
  });

  it('scales to a configured maximum with the same shape (gumbelMax)', () => {
    expect(gumbelScale(3, 30, 100)).toBeCloseTo(100 * Math.sqrt(0.1), 9);
    expect(gumbelScale(30, 30, 100)).toBe(100);
  });
});
