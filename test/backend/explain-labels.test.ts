// Words on the explanation pictures: drawn in a bundled font (the same pixels everywhere), inside their
// block, and saying what the explanation says.
import type { ClassEvidence, Explanation, ModelManifest } from '@protopool/shared';
import { describe, expect, it } from 'vitest';
import { textBlock } from '../../gpu-backend/src/explain/labels';
import { classCard } from '../../gpu-backend/src/explain/pictures';

/** How many pixels of `img` differ from white, and how many are the warning red #b00020 (anti-aliased: near it). */
function ink(img: { rgba: Uint8Array }) {
  let dark = 0;
  let red = 0;
  for (let i = 0; i < img.rgba.length; i += 4) {
    const [r, g, b] = [img.rgba[i]!, img.rgba[i + 1]!, img.rgba[i + 2]!];
    if (r < 250 || g < 250 || b < 250) dark++;
    if (r > 120 && g < 60 && b < 70) red++;
  }
  return { dark, red };
}

describe('text blocks', () => {
  it('are white with dark text, as tall as their lines, and the same pixels for the same words', () => {
    const a = textBlock([{ text: 'Predicted: Trouser (97.3%)', size: 18 }, { text: 'slot 0' }], 300);
    // 6 px padding, ⌈18·1.35⌉ = 25, ⌈13·1.35⌉ = 18, 6 px.
    expect([a.width, a.height, a.rgba.length]).toEqual([300, 55, 300 * 55 * 4]);
    expect(ink(a).dark).toBeGreaterThan(200);
    expect(
      textBlock([{ text: 'Predicted: Trouser (97.3%)', size: 18 }, { text: 'slot 0' }], 300).rgba,
    ).toEqual(a.rgba);
    const other = textBlock([{ text: 'Predicted: Sneaker (97.3%)', size: 18 }, { text: 'slot 0' }], 300);
    expect(other.rgba).not.toEqual(a.rgba);
    expect(ink(textBlock([], 50))).toEqual({ dark: 0, red: 0 });
  });
});

describe('class cards', () => {
  const input: ModelManifest['input'] = {
    height: 4,
    width: 4,
    channels: 1,
    resize: 'stretch',
    mean: [0.5],
    std: [0.5],
  };
  const slot = (s: number) => ({
    slot: s,
    prototypeId: 7 + s,
    assignmentWeight: 1,
    similarity: 2,
    weight: 1,
    contribution: 2,
    peak: { h: 0, w: 0 },
    box: { x0: 0, y0: 0, x1: 2, y1: 2 },
    activation: { height: 2, width: 2, data: [1, 0, 0, 0] },
    source: null,
  });
  const evidence: ClassEvidence = {
    classIndex: 1,
    label: 'Trouser',
    logit: 4.5,
    slots: [slot(0), slot(1)],
    residual: 0.5,
  };
  const explanation = (flagged: boolean): Explanation => ({
    id: 'a'.repeat(64),
    modelVersion: 'b'.repeat(64),
    prediction: { classIndex: 1, label: 'Trouser', logit: 4.5, probability: 0.9 },
    topK: [{ classIndex: 1, label: 'Trouser', logit: 4.5, probability: 0.9 }],
    classes: [evidence],
    novelty: { bestSimilarity: 0.1, score: flagged ? 0.99 : 0.3, flagged },
  });

  it('head the rows with the class and its probability, and warn in red only when the input is novel', () => {
    const image = new Float32Array(16).fill(0);
    const plain = classCard(image, input, explanation(false), evidence, new Map());
    const novel = classCard(image, input, explanation(true), evidence, new Map());
    // Input 4 px enlarged ×40 = 160 px rows; the novel card's header has one more 13 px line (18 px).
    expect(novel.height - plain.height).toBe(18);
    expect(plain.height).toBe(55 + 12 + 2 * 160 + 12);
    expect(ink(plain).red).toBe(0);
    expect(ink(novel).red).toBeGreaterThan(50);
  });
});
