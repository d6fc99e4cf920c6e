// Local explanations: the prediction, top-k, and per slot of the explained classes its evidence
// (prototype, assignment weight, focal similarity, weight, contribution, peak, box, map, source).
import {
  type ClassEvidence,
  type ClassifyOptions,
  type ClassScore,
  type Explanation,
  type ModelManifest,
  noveltyOf,
  type SlotEvidence,
} from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import type { ProtoPoolModel } from '../model/protopool';
import { mapOf } from '../model/similarity';
import { activationBox } from './boxes';
import { bestSimilarity } from './novelty';

interface Pulled {
  logits: number[][];
  probs: number[][];
  focal: number[][];
  /** [B,H,W,M] similarity maps, flat (`mapOf` reads one). */
  maps: Float32Array;
}

/** One forward at inference settings, everything an explanation needs pulled off the device. */
async function forwardForExplanation(model: ProtoPoolModel, x: tf.Tensor4D): Promise<Pulled> {
  const [logitsT, probsT, focalT, mapsT] = tf.tidy(() => {
    const r = model.forwardWithMaps(x);
    return [r.logits, tf.softmax(r.logits), r.focal, r.maps];
  });
  const [logits, probs, focal, maps] = await Promise.all([
    logitsT.array(),
    probsT.array(),
    focalT.array(),
    mapsT.data(),
  ]);
  tf.dispose([logitsT, probsT, focalT, mapsT]);
  return {
    logits: logits as number[][],
    probs: probs as number[][],
    focal: focal as number[][],
    maps: maps as Float32Array,
  };
}

/** The inference assignment q [C][M][K] and last layer W [C][C·K], read once per batch. */
export interface HeadState {
  q: number[][][];
  w: number[][];
}

/** Read once per batch — or once per model by a server whose model never changes (pass it to explainBatch). */
export async function headState(model: ProtoPoolModel): Promise<HeadState> {
  const qT = model.head.assignment({ kind: 'inference' });
  const [q, w] = await Promise.all([qT.array(), model.head.lastLayer.array()]);
  qT.dispose();
  return { q: q as number[][][], w: w as number[][] };
}

function ranked(logits: number[], probs: number[], classes: string[], k: number): ClassScore[] {
  return logits
    .map((logit, classIndex) => ({
      classIndex,
      label: classes[classIndex]!,
      logit,
      probability: probs[classIndex]!,
    }))
    .sort((a, b) => b.logit - a.logit || a.classIndex - b.classIndex)
    .slice(0, k);
}

/**
 * Explains each image of the batch x [B,H,W,C] (normalised). `ids` are the content addresses the caller
 * computed (explanationId). Deterministic: the same model and input give the same explanation.
 */
export async function explainBatch(
  model: ProtoPoolModel,
  manifest: ModelManifest,
  x: tf.Tensor4D,
  ids: string[],
  options: ClassifyOptions | ClassifyOptions[],
  head?: HeadState,
): Promise<Explanation[]> {
  const each = Array.isArray(options) ? options : ids.map(() => options);
  const pulled = await forwardForExplanation(model, x);
  const { q, w } = each.some((o) => o.explain) ? (head ?? (await headState(model))) : { q: [], w: [] };
  const { classes } = manifest;
  const { slotsPerClass: k, prototypes: m } = model.config;
  const [gh, gw] = model.grid;
  const [ih, iw] = model.config.inputShape;
  const sources = new Map(manifest.prototypes.map((p) => [p.id, p.source]));
  const used = manifest.prototypes.map((p) => p.id);

  return ids.map((id, b) => {
    const options = each[b]!;
    const top = ranked(pulled.logits[b]!, pulled.probs[b]!, classes, Math.min(options.topK, classes.length));
    const explained = !options.explain ? [] : options.explainTopK ? top : top.slice(0, 1);
    const evidence: ClassEvidence[] = explained.map(({ classIndex: c, label, logit }) => {
      const slots: SlotEvidence[] = [];
      for (let s = 0; s < k; s++) {
        let proto = 0;
        for (let j = 1; j < m; j++) if (q[c]![j]![s]! > q[c]![proto]![s]!) proto = j;
        const map = mapOf(pulled.maps, b, proto, gh * gw, m);
        let peak = 0;
        for (let cell = 1; cell < map.length; cell++) if (map[cell]! > map[peak]!) peak = cell;
        const weight = w[c]![c * k + s]!;
        const sim = pulled.focal[b]![c * k + s]!;
        slots.push({
          slot: s,
          prototypeId: proto,
          assignmentWeight: Math.min(1, Math.max(0, q[c]![proto]![s]!)),
          similarity: sim,
          weight,
          contribution: weight * sim,
          peak: { h: Math.floor(peak / gw), w: peak % gw },
          box: activationBox(map, gh, gw, ih, iw),
          activation: { height: gh, width: gw, data: map },
          source: sources.get(proto) ?? null,
        });
      }
      const own = slots.reduce((sum, e) => sum + e.contribution, 0);
      return { classIndex: c, label, logit, slots, residual: logit - own };
    });
    const novelty =
      manifest.novelty && noveltyOf(bestSimilarity(pulled.maps, b, gh * gw, m, used), manifest.novelty);
    return {
      id,
      modelVersion: manifest.version,
      prediction: top[0]!,
      topK: top,
      classes: evidence,
      ...(novelty ? { novelty } : {}),
    };
  });
}
