// One explanation as a self-contained HTML page, like the demo's answer: the novelty warning, the prediction
// and top classes, and per explained class its labelled card (heatmaps, training patches, numbers) and a
// table of its slots. Pictures are inlined, so the page opens offline and can be mailed as it is.
import { type Explanation, encodeBase64 } from '@protopool/shared';
import { percent } from '../util/format';
import { escapeHtml } from '../util/html';

export function explanationPage(
  file: string,
  e: Explanation,
  cards: ReadonlyMap<number, Uint8Array>,
): string {
  const novelty = e.novelty?.flagged
    ? `<p class="warning" role="alert">This looks like nothing the model was trained on: no prototype matches any part of it well (novelty ${e.novelty.score.toFixed(2)}: ${(100 * e.novelty.score).toFixed(0)}% of training images match a prototype better). Treat the prediction as a guess.</p>`
    : '';
  const topK = e.topK
    .map(
      (t) =>
        `<li><span class="bar" style="width:${Math.max(2, Math.round(200 * t.probability))}px"></span> ${escapeHtml(t.label)} ${percent(t.probability)}</li>`,
    )
    .join('');
  const classes = e.classes
    .map((c) => {
      const card = cards.get(c.classIndex);
      const rows = c.slots
        .map(
          (s) =>
            `<tr><td>${s.slot}</td><td>#${s.prototypeId}</td><td class="num">${s.similarity.toFixed(3)}</td><td class="num">${s.weight.toFixed(3)}</td><td class="num">${s.contribution.toFixed(3)}</td><td>${s.source ? `${escapeHtml(s.source.imageId)}` : '–'}</td></tr>`,
        )
        .join('');
      const own = c.slots.reduce((sum, s) => sum + s.contribution, 0);
      return `<section><h2>Why “${escapeHtml(c.label)}”</h2>
<p>logit ${c.logit.toFixed(3)} = the slots’ contributions ${own.toFixed(3)} + other classes’ slots ${c.residual.toFixed(3)}</p>
${card ? `<img class="card" src="data:image/png;base64,${encodeBase64(card)}" alt="heatmaps and training patches for ${escapeHtml(c.label)}">` : ''}
<table><thead><tr><th>slot</th><th>prototype</th><th>similarity</th><th>weight</th><th>contribution</th><th>learned from</th></tr></thead><tbody>${rows}</tbody></table></section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(file)}: ${escapeHtml(e.prediction.label)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1b1f24}
.warning{border-left:4px solid #b00020;background:#fff4f4;padding:.5rem .75rem}
.bar{display:inline-block;height:.7rem;background:#0a58ca;border-radius:3px}ul{list-style:none;padding:0}
table{border-collapse:collapse}th,td{padding:.2rem .5rem;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}.card{max-width:100%;image-rendering:pixelated}
</style></head><body>
<h1>${escapeHtml(file)}</h1>
${novelty}
<p><strong>${escapeHtml(e.prediction.label)}</strong>, ${percent(e.prediction.probability)}</p>
<ul>${topK}</ul>
${classes}
<p><small>model <code>${e.modelVersion.slice(0, 12)}</code> · explanation <code>${e.id.slice(0, 12)}</code></small></p>
</body></html>
`;
}
