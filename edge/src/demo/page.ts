// The demo page at `/`: choose a model, pick or upload an image, see the prediction and, per slot, where the
// evidence is (heatmap + box) beside the training patch it matches; a second view shows the prototype gallery.
import { SAMPLES } from './samples';

const CSS = `
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--accent:#0a58ca;--bg:#fff}
*{box-sizing:border-box}body{font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header,main{max-width:70rem;margin:0 auto;padding:1rem}header{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between}
h1{font-size:1.4rem;margin:0}nav button{font:inherit;padding:.4rem .9rem;border:1px solid var(--line);background:#f6f8fa;border-radius:6px;cursor:pointer}
nav button[aria-selected=true]{background:var(--accent);color:#fff;border-color:var(--accent)}
label{font-weight:600}input[type=password],select{font:inherit;padding:.3rem .5rem;width:16rem}select{width:auto;max-width:100%}
.samples{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}.samples button{padding:2px;border:2px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}
.samples button:focus-visible,.samples button:hover{border-color:var(--accent)}.samples img{width:56px;height:56px;image-rendering:pixelated;display:block}
.pred{font-size:1.3rem;margin:.5rem 0}.topk li{display:flex;gap:.5rem;align-items:center}.bar{height:.7rem;background:var(--accent);border-radius:3px}
.slots{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem}.slot{border:1px solid var(--line);border-radius:8px;padding:.75rem}
.pair{display:flex;gap:.75rem;align-items:flex-start}.pair figure{margin:0}.pair figcaption{font-size:.8rem;color:var(--muted)}
canvas,.patch{width:140px;height:140px;image-rendering:pixelated;border:1px solid var(--line)}.patch{object-fit:contain;background:#000}
.num{font-variant-numeric:tabular-nums}.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.75rem;align-items:start}
.card{border:1px solid var(--line);border-radius:8px;padding:.5rem;font-size:.85rem}.card img{width:100%;height:8rem;object-fit:contain;image-rendering:pixelated;background:#000}
.error{color:#b00020}.warning{border-left:4px solid #b00020;background:#fff4f4;padding:.5rem .75rem;margin:.5rem 0}.muted{color:var(--muted)}[hidden]{display:none!important}
`;

const SCRIPT = `
const $ = (s) => document.querySelector(s);
const keyInput = $('#key');
const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
if (fromHash) { sessionStorage.setItem('ppKey', fromHash); history.replaceState(null, '', location.pathname); }
keyInput.value = sessionStorage.getItem('ppKey') || '';
keyInput.addEventListener('change', () => sessionStorage.setItem('ppKey', keyInput.value.trim()));
// The model every call names (?model=): the deployment's default until the user picks another. Null while
// /v1/models is unanswered, then calls name no model and the default answers.
let model = null;
const manifests = new Map();
const named = (path, sep) => model ? path + (sep || '?') + 'model=' + encodeURIComponent(model) : path;
async function loadManifest() {
  const key = model || '';
  if (manifests.has(key)) return manifests.get(key);
  const r = await fetch(named('/v1/model'));
  if (!r.ok) throw new Error('model unavailable (' + r.status + ')');
  const m = await r.json(); manifests.set(key, m); return m;
}
function showSamples() {
  let any = false;
  for (const g of document.querySelectorAll('.samples')) { g.hidden = g.dataset.model !== model; any ||= !g.hidden; }
  $('#no-samples').hidden = any;
}
async function loadModels() {
  const r = await fetch('/v1/models');
  if (!r.ok) { showSamples(); return; }
  const list = await r.json(); const sel = $('#model'); sel.replaceChildren();
  for (const s of list.models) {
    const o = document.createElement('option'); o.value = s.name;
    const acc = s.metrics.accuracy;
    o.textContent = s.name + ' — ' + s.classes.length + ' classes, ' + s.prototypes + ' prototypes' +
      (acc === undefined ? '' : ', ' + (100 * acc).toFixed(1) + '% test accuracy');
    sel.append(o);
  }
  sel.value = model = list.default; $('#model-picker').hidden = false; showSamples();
}
$('#model').addEventListener('change', (ev) => {
  model = ev.target.value; $('#result').hidden = true; setStatus(''); showSamples();
  if (!$('#gallery-view').hidden) gallery().catch((e) => setStatus(String(e.message || e), true));
});
loadModels().catch((e) => setStatus(String(e.message || e), true));
function setStatus(text, error) { const s = $('#status'); s.textContent = text; s.className = error ? 'error' : 'muted'; }
async function classify(blob, name) {
  $('#result').hidden = true;
  setStatus('Classifying ' + name + '…');
  try {
    const m = await loadManifest();
    const r = await fetch(named('/v1/classify?topK=5', '&'), { method: 'POST', body: blob,
      headers: { 'content-type': blob.type || 'image/png', authorization: 'Bearer ' + keyInput.value.trim() } });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : 'HTTP ' + r.status);
    await show(body, m, blob, r.headers.get('x-cache'));
    setStatus('');
  } catch (e) { setStatus(String(e.message || e), true); }
}
function heat(v) { // 0..1 → rgba, transparent blue to opaque red
  const r = Math.round(255 * Math.min(1, 2 * v)), b = Math.round(255 * Math.max(0, 1 - 2 * v));
  return [r, Math.round(80 * (1 - Math.abs(2 * v - 1))), b, Math.round(60 + 150 * v)];
}
async function show(e, m, blob, cache) {
  const img = await createImageBitmap(blob);
  $('#pred').textContent = e.prediction.label + ' — ' + (100 * e.prediction.probability).toFixed(1) + '%';
  $('#cache').textContent = cache ? '(cache ' + cache + ')' : '';
  // The model's own doubt: no prototype is near anything in this image (see the API's novelty field).
  const n = e.novelty;
  $('#novelty').hidden = !(n && n.flagged);
  $('#novelty').textContent = n && n.flagged
    ? 'This looks like nothing the model was trained on: no prototype matches any part of it well (novelty ' +
      n.score.toFixed(2) + ': ' + (100 * n.score).toFixed(0) + '% of training images match a prototype better). Treat the prediction below as a guess.'
    : '';
  const ul = $('#topk'); ul.replaceChildren();
  for (const t of e.topK) {
    const li = document.createElement('li');
    li.innerHTML = '<span class="bar" style="width:' + Math.max(2, 160 * t.probability) + 'px"></span><span class="num"></span>';
    li.lastChild.textContent = t.label + ' ' + (100 * t.probability).toFixed(1) + '%';
    ul.append(li);
  }
  const slots = $('#slots'); slots.replaceChildren();
  const cls = e.classes[0];
  $('#evidence-title').textContent = cls ? 'Why “' + cls.label + '”: ' + cls.slots.length + ' slots (logit ' + cls.logit.toFixed(2) + ')' : '';
  for (const s of cls ? cls.slots : []) {
    const div = document.createElement('div'); div.className = 'slot';
    const c = document.createElement('canvas'); c.width = m.input.width * 5; c.height = m.input.height * 5;
    c.setAttribute('role', 'img'); c.setAttribute('aria-label', 'input with activation of prototype ' + s.prototypeId + ', box at ' + s.box.x0 + ',' + s.box.y0);
    const g = c.getContext('2d'); g.imageSmoothingEnabled = false;
    g.drawImage(img, 0, 0, c.width, c.height);
    const a = s.activation, max = Math.max(...a.data), min = Math.min(...a.data);
    const hm = new ImageData(a.width, a.height);
    a.data.forEach((v, i) => hm.data.set(heat(max > min ? (v - min) / (max - min) : 0), i * 4));
    const tmp = new OffscreenCanvas(a.width, a.height); tmp.getContext('2d').putImageData(hm, 0, 0);
    g.imageSmoothingEnabled = true; g.drawImage(tmp, 0, 0, c.width, c.height);
    const k = c.width / m.input.width; g.strokeStyle = '#ffd400'; g.lineWidth = 3;
    g.strokeRect(s.box.x0 * k, s.box.y0 * k, (s.box.x1 - s.box.x0) * k, (s.box.y1 - s.box.y0) * k);
    const src = s.source;
    div.innerHTML = '<div class="pair"><figure></figure><figure><img class="patch" alt=""><figcaption></figcaption></figure></div><p class="num"></p>';
    div.querySelector('figure').append(c);
    const patch = div.querySelector('.patch');
    patch.src = named('/v1/prototypes/' + s.prototypeId + '/image?v=' + e.modelVersion, '&');
    patch.alt = 'training patch of prototype ' + s.prototypeId + (src ? ' from ' + src.imageId : '');
    div.querySelector('figcaption').textContent = 'prototype ' + s.prototypeId + (src ? ', from ' + src.imageId + ' (' + m.classes[src.label] + ')' : '');
    div.querySelector('p').textContent = 'slot ' + s.slot + ': similarity ' + s.similarity.toFixed(3) + ' × weight ' + s.weight.toFixed(2) + ' = contribution ' + s.contribution.toFixed(3);
    slots.append(div);
  }
  $('#result').hidden = false;
}
for (const b of document.querySelectorAll('.samples button')) {
  b.addEventListener('click', async () => classify(await (await fetch(b.dataset.png)).blob(), b.dataset.label));
}
$('#file').addEventListener('change', (ev) => { const f = ev.target.files[0]; if (f) classify(f, f.name); });
async function gallery() {
  const m = await loadManifest(); const root = $('#gallery'); root.replaceChildren();
  $('#gallery-title').textContent = m.prototypes.length + ' prototypes in use (pool of ' + m.architecture.prototypes + '), shared by ' + m.classes.length + ' classes';
  for (const p of m.prototypes) {
    const d = document.createElement('div'); d.className = 'card';
    const classes = [...new Set(p.usedBy.map((u) => m.classes[u.classIndex]))];
    d.innerHTML = '<img alt=""><div></div>';
    d.querySelector('img').src = named('/v1/prototypes/' + p.id + '/image?v=' + m.version, '&');
    d.querySelector('img').alt = 'prototype ' + p.id;
    d.querySelector('div').textContent = '#' + p.id + ' · ' + (classes.length > 1 ? 'shared by ' : 'used by ') + classes.join(', ');
    root.append(d);
  }
}
for (const t of document.querySelectorAll('nav button')) {
  t.addEventListener('click', () => {
    for (const u of document.querySelectorAll('nav button')) u.setAttribute('aria-selected', String(u === t));
    $('#classify-view').hidden = t.dataset.view !== 'classify';
    $('#gallery-view').hidden = t.dataset.view !== 'gallery';
    if (t.dataset.view === 'gallery') gallery().catch((e) => setStatus(String(e.message || e), true));
  });
}
`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]!);
}

export function demoPage(): string {
  // Every shipped model's samples are in the page; the script shows the chosen model's (none until it knows).
  const samples = Object.entries(SAMPLES)
    .map(
      ([model, list]) =>
        `<div class="samples" data-model="${escapeHtml(model)}" hidden>${list
          .map(
            (s) =>
              `<button type="button" data-png="${s.png}" data-label="${escapeHtml(s.label)}" title="${escapeHtml(s.label)} (${model} ${s.id})"><img src="${s.png}" alt="${escapeHtml(s.label)}"></button>`,
          )
          .join('')}</div>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ProtoPool — interpretable classification</title><style>${CSS}</style></head><body>
<header><h1>ProtoPool: this looks like that</h1>
<nav role="tablist" aria-label="Views"><button role="tab" aria-selected="true" data-view="classify">Classify</button> <button role="tab" aria-selected="false" data-view="gallery">Prototypes</button></nav>
<div id="model-picker" hidden><label for="model">Model</label> <select id="model"></select></div>
<div><label for="key">API key</label> <input id="key" type="password" autocomplete="off" placeholder="Bearer key"></div></header>
<main><section id="classify-view" aria-labelledby="pick-title">
<h2 id="pick-title">Pick a test image or upload your own</h2>
${samples}<p id="no-samples" class="muted" hidden>No sample images for this model: upload one.</p>
<label for="file">Upload (PNG or JPEG)</label> <input id="file" type="file" accept="image/png,image/jpeg">
<p id="status" class="muted" role="status" aria-live="polite"></p>
<section id="result" hidden aria-live="polite"><p id="novelty" class="warning" role="alert" hidden></p><p class="pred"><strong id="pred"></strong> <span id="cache" class="muted"></span></p>
<ol id="topk" class="topk" aria-label="Top classes"></ol><h3 id="evidence-title"></h3><div id="slots" class="slots"></div></section>
</section>
<section id="gallery-view" hidden><h2 id="gallery-title">Prototypes</h2><div id="gallery" class="gallery"></div></section>
<p class="muted">API: <a href="/docs">/docs</a> · <a href="/openapi.json">/openapi.json</a></p></main>
<script>${SCRIPT}</script></body></html>`;
}
