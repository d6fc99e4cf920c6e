// A training report as one self-contained HTML page: curves, the slot-assignment matrix, the sharing graph,
// every prototype's training patch, the metrics with their definitions. No network: the chart library and
// the pictures are inlined, so the file opens offline and can be mailed or archived as it is.
import { encodeBase64 } from '@protopool/shared';
import { percent } from '../util/format';
import { escapeHtml } from '../util/html';
import type { ReportData } from './report-data';

/** What each metric a manifest may carry means, in a sentence (the report shows those it has). */
export const METRIC_DEFINITIONS: Record<string, string> = {
  accuracy: 'Share of test images whose predicted class is their label.',
  loss: 'Mean cross-entropy of the test images (natural log).',
  prototypesUsed: 'Distinct prototypes the class slots use after training: the fewer, the more compact.',
  testExamples: 'Test images the figures above were measured on.',
  consistency:
    'Huang et al. 2023: share of class slots whose prototype, on the images of its class, puts the same annotated part inside a window around its peak (72 px at 224 px) in at least 80% of the images where that part is visible.',
  consistencyShared:
    'Consistency per distinct prototype, judged on the images of every class that uses it (stricter for shared prototypes).',
  stability:
    'Huang et al. 2023: mean over class slots of the share of images whose parts in that window stay the same when noise is added to the image.',
  purity:
    'PIP-Net: mean over used prototypes of the share of its 10 most similar training patches (32 px at 224 px) that contain its most frequent part.',
  localSize:
    'PIP-Net: prototypes with a non-zero contribution to the predicted class, on average over images.',
};

function formatMetric(name: string, v: number): string {
  if (name === 'accuracy') return percent(v);
  if (['consistency', 'consistencyShared', 'stability', 'purity'].includes(name)) return `${v.toFixed(1)}%`;
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

function patchImg(d: ReportData, id: number, size: number): string {
  const png = d.patches.get(id);
  const alt = `prototype ${id}`;
  if (!png) return `<span class="nopatch" title="${alt}: no training patch">#${id}</span>`;
  return `<img src="data:image/png;base64,${encodeBase64(png)}" width="${size}" height="${size}" alt="${alt}" title="${alt}">`;
}

function summary(d: ReportData): string {
  const m = d.manifest;
  const c = d.global.compactness;
  const rows = [
    ['model', escapeHtml(m.name)],
    ['version', `<code>${m.version.slice(0, 12)}</code>`],
    ['backbone', escapeHtml(m.architecture.backbone)],
    ['input', `${m.input.height}×${m.input.width}×${m.input.channels}`],
    ['classes', String(m.classes.length)],
    [
      'prototypes',
      `${c.prototypesUsed} used of a pool of ${c.poolSize}; ${c.sharedPrototypes} shared by several classes`,
    ],
    ['trained', escapeHtml(m.createdAt)],
    ...(m.training ? [['command', `<code>${escapeHtml(m.training.command)}</code>`]] : []),
  ];
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function metrics(d: ReportData): string {
  const rows = Object.entries(d.manifest.metrics).map(
    ([k, v]) =>
      `<tr><th>${escapeHtml(k)}</th><td class="num">${formatMetric(k, v)}</td><td>${escapeHtml(METRIC_DEFINITIONS[k] ?? '')}</td></tr>`,
  );
  const n = d.manifest.novelty;
  if (n)
    rows.push(
      `<tr><th>novelty threshold</th><td class="num">${n.percentiles[n.flagBelowPercentile]!.toFixed(3)}</td><td>An answer is flagged “looks like nothing I know” when its best prototype similarity is below the ${n.flagBelowPercentile}th percentile of ${n.images} training images.</td></tr>`,
    );
  return `<table class="metrics"><thead><tr><th>metric</th><th>value</th><th>what it means</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function curves(d: ReportData): string {
  if (!d.epochs.length)
    return '<p class="note">No training log (train.jsonl) beside this model directory: no curves.</p>';
  const series = {
    labels: d.epochs.map((e) => `${e.epoch} ${e.phase}`),
    trainLoss: d.epochs.map((e) => e.trainLoss),
    testLoss: d.epochs.map((e) => e.testLoss ?? null),
    trainAccuracy: d.epochs.map((e) => 100 * e.trainAccuracy),
    testAccuracy: d.epochs.map((e) => (e.testAccuracy === undefined ? null : 100 * e.testAccuracy)),
    prototypesUsed: d.epochs.map((e) => e.prototypesUsed ?? null),
  };
  // JSON inside a script: "<" escaped so no label can close the element.
  const data = JSON.stringify(series).replace(/</g, '\\u003c');
  return `<div class="charts">
<figure><canvas id="loss" aria-label="loss per epoch"></canvas><figcaption>Loss per epoch and phase: train is the whole objective (cross-entropy plus the cluster, separation and orthogonality terms, which can take it below 0); test is cross-entropy</figcaption></figure>
<figure><canvas id="accuracy" aria-label="accuracy per epoch"></canvas><figcaption>Accuracy per epoch, %</figcaption></figure>
<figure><canvas id="used" aria-label="prototypes used per epoch"></canvas><figcaption>Prototypes the slots use</figcaption></figure>
</div>
<script>
const S = ${data};
const line = (id, sets, yTitle) => new Chart(document.getElementById(id), {
  type: 'line',
  data: { labels: S.labels, datasets: sets.map(([label, values, color]) => ({ label, data: values, borderColor: color, backgroundColor: color, spanGaps: true })) },
  options: { animation: false, responsive: true, scales: { x: { title: { display: true, text: 'epoch' } }, y: { title: { display: true, text: yTitle } } } },
});
line('loss', [['train', S.trainLoss, '#1f77b4'], ['test', S.testLoss, '#d62728']], 'loss');
line('accuracy', [['train', S.trainAccuracy, '#1f77b4'], ['test', S.testAccuracy, '#d62728']], '%');
line('used', [['prototypes used', S.prototypesUsed, '#2ca02c']], 'prototypes');
</script>`;
}

function assignmentMatrix(d: ReportData): string {
  const k = d.manifest.architecture.slotsPerClass;
  const slotOf = new Map<string, number>();
  for (const p of d.manifest.prototypes)
    for (const u of p.usedBy) slotOf.set(`${u.classIndex}/${u.slot}`, p.id);
  const head = Array.from({ length: k }, (_, s) => `<th>slot ${s}</th>`).join('');
  const rows = d.manifest.classes.map((label, c) => {
    const cells = Array.from({ length: k }, (_, s) => {
      const id = slotOf.get(`${c}/${s}`);
      return id === undefined ? '<td>–</td>' : `<td>${patchImg(d, id, 48)}<div class="pid">#${id}</div></td>`;
    });
    return `<tr><th>${escapeHtml(label)}</th>${cells.join('')}</tr>`;
  });
  return `<table class="matrix"><thead><tr><th>class</th>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** Classes on the left, prototypes on the right, a line per slot; prototypes shared by classes in red. */
function sharingGraph(d: ReportData): string {
  const classes = d.manifest.classes;
  const protos = d.global.prototypes.filter((p) => p.usedBy.length > 0);
  const row = 28;
  // Room for the longest class name left of its node (about 7 px a character at 12 px).
  const left = 20 + 7 * Math.max(...classes.map((c) => c.length));
  const right = left + 240;
  const height = Math.max(classes.length, protos.length) * row + 20;
  const y = (i: number, n: number) => 10 + row / 2 + (i * (height - 20 - row)) / Math.max(1, n - 1);
  const cy = (i: number) => (classes.length === 1 ? height / 2 : y(i, classes.length));
  const py = (i: number) => (protos.length === 1 ? height / 2 : y(i, protos.length));
  const edges = protos.flatMap((p, j) =>
    p.classes.map(
      (c) =>
        `<line x1="${left}" y1="${cy(c).toFixed(1)}" x2="${right}" y2="${py(j).toFixed(1)}" stroke="${p.classes.length > 1 ? '#d62728' : '#999'}" stroke-width="${p.classes.length > 1 ? 2 : 1}"/>`,
    ),
  );
  const classLabels = classes.map(
    (label, i) =>
      `<text x="${left - 10}" y="${(cy(i) + 4).toFixed(1)}" text-anchor="end">${escapeHtml(label)}</text><circle cx="${left}" cy="${cy(i).toFixed(1)}" r="4"/>`,
  );
  const protoLabels = protos.map(
    (p, j) =>
      `<circle cx="${right}" cy="${py(j).toFixed(1)}" r="4"/><text x="${right + 10}" y="${(py(j) + 4).toFixed(1)}">#${p.id}${p.classes.length > 1 ? ` (${p.classes.length} classes)` : ''}</text>`,
  );
  return `<svg class="graph" viewBox="0 0 ${right + 160} ${height}" width="${right + 160}" height="${height}" role="img" aria-label="classes and the prototypes they use">${edges.join('')}${classLabels.join('')}${protoLabels.join('')}</svg>`;
}

function gallery(d: ReportData): string {
  const cards = d.global.prototypes
    .filter((p) => p.usedBy.length > 0)
    .map((p) => {
      const users = p.classes.map((c) => escapeHtml(d.manifest.classes[c] ?? String(c))).join(', ');
      const from = p.source
        ? `from <code>${escapeHtml(p.source.imageId)}</code>, a ${escapeHtml(d.manifest.classes[p.source.label] ?? String(p.source.label))}`
        : 'not projected onto a training patch';
      return `<figure class="card">${patchImg(d, p.id, 96)}<figcaption><b>#${p.id}</b><br>used by ${users}<br><small>${from}</small></figcaption></figure>`;
    });
  return `<div class="gallery">${cards.join('')}</div>`;
}

export function reportHtml(d: ReportData, chartLibrary: string): string {
  const title = `ProtoPool training report: ${escapeHtml(d.manifest.name)}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse}th,td{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:1rem}
figure{margin:0}figcaption{font-size:.85rem;color:#555}
.matrix td{text-align:center}.matrix img,.card img{image-rendering:pixelated;border:1px solid #ccc}.pid{font-size:.75rem}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:.75rem}
.card{border:1px solid #eee;padding:.4rem}.nopatch{display:inline-block;border:1px dashed #aaa;padding:.5rem}
.graph text{font-size:12px}.note{color:#666}
</style>
<script>${chartLibrary.replace(/<\/script/gi, '<\\/script')}</script>
</head><body>
<h1>${title}</h1>
${summary(d)}
<h2>Training</h2>
${curves(d)}
<h2>Metrics</h2>
${metrics(d)}
<h2>Slot assignment</h2>
<p>Each class has ${d.manifest.architecture.slotsPerClass} slots; each slot holds one prototype of the shared pool (ProtoPool’s Gumbel-softmax assignment, made hard after training). A prototype in several rows is shared.</p>
${assignmentMatrix(d)}
<h2>Which classes share which prototypes</h2>
${sharingGraph(d)}
<h2>Prototypes and their training patches</h2>
${gallery(d)}
</body></html>
`;
}
