// The training report: one self-contained page with the run's curves, the slot assignment, the sharing graph,
// every prototype's training patch and the metrics with their definitions, read from a real tiny run.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBase64 } from '@protopool/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { initEngine } from '../../gpu-backend/src/engine';
import { epochsOf, type ReportData, readReportData } from '../../gpu-backend/src/report/report-data';
import { METRIC_DEFINITIONS, reportHtml } from '../../gpu-backend/src/report/report-html';
import { TrainConfig } from '../../gpu-backend/src/train/config';
import { train } from '../../gpu-backend/src/train/trainer';
import { TINY_CONFIG } from '../helpers/backend-process';

const CHART_STUB = '/* chart library */ window.Chart = function () {};';
let data: ReportData;
let logged: Record<string, unknown>[];
let html: string;

beforeAll(async () => {
  await initEngine('wasm');
  const out = await mkdtemp(join(tmpdir(), 'pp-report-'));
  logged = [];
  const r = await train({
    dataset: await openDataset('fashion-mnist:embedded'),
    config: TrainConfig.parse({ seed: 5, ...TINY_CONFIG }),
    outDir: out,
    resume: false,
    command: 'protopool train <tiny & "quoted">',
    events: { onLog: (e) => logged.push(e) },
  });
  // As the CLI's reporter writes it: one JSON object a line, plus a line that is not JSON.
  await writeFile(join(out, 'train.jsonl'), `${logged.map((e) => JSON.stringify(e)).join('\n')}\nnot json\n`);
  data = await readReportData(r.modelDir);
  html = reportHtml(data, CHART_STUB);
});

describe('training report', () => {
  it('reads one curve point per epoch of the log, the last word on a repeated epoch winning', () => {
    const epochs = logged.filter((e) => e.event === 'epoch');
    expect(data.epochs.map((e) => [e.epoch, e.phase, e.trainLoss])).toEqual(
      epochs.map((e) => [e.epoch, e.phase, e.trainLoss]),
    );
    const resumed = epochsOf(
      [
        { event: 'epoch', epoch: 1, phase: 'warmup', trainLoss: 2, trainAccuracy: 0.1 },
        { event: 'epoch', epoch: 1, phase: 'warmup', trainLoss: 1.5, trainAccuracy: 0.2 },
        { event: 'resume' },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n'),
    );
    expect(resumed.map((e) => e.trainLoss)).toEqual([1.5]);
  });

  it('puts every epoch’s losses and accuracies (in %) into the charts’ data', () => {
    const series = JSON.parse(/const S = (\{.*\});/.exec(html)![1]!) as Record<string, unknown[]>;
    expect(series.labels).toEqual(data.epochs.map((e) => `${e.epoch} ${e.phase}`));
    expect(series.trainLoss).toEqual(data.epochs.map((e) => e.trainLoss));
    expect(series.testAccuracy).toEqual(data.epochs.map((e) => 100 * e.testAccuracy!));
  });

  it('shows every used prototype’s training patch inline, in the gallery and in its slots', () => {
    for (const p of data.manifest.prototypes.filter((q) => q.usedBy.length)) {
      const uri = `data:image/png;base64,${encodeBase64(data.patches.get(p.id)!)}`;
      // Once in the gallery, once per slot that holds it in the assignment matrix.
      expect(html.split(uri).length - 1).toBe(1 + p.usedBy.length);
    }
  });

  it('lists each metric of the manifest with its definition, and the novelty threshold', () => {
    for (const name of Object.keys(data.manifest.metrics)) {
      expect(METRIC_DEFINITIONS[name], name).toBeDefined();
      expect(html).toContain(`<th>${name}</th>`);
    }
    expect(html).toContain(
      `${(100 * data.manifest.metrics.accuracy!).toFixed(1)}%</td><td>${METRIC_DEFINITIONS.accuracy}`,
    );
    expect(html).toContain(data.manifest.novelty!.percentiles[5]!.toFixed(3));
  });

  it('draws a line per slot in the sharing graph, shared prototypes in red', () => {
    const slots = data.manifest.classes.length * data.manifest.architecture.slotsPerClass;
    const lines = html.match(/<line /g) ?? [];
    // One line per (prototype, class) pair: a prototype in two slots of one class draws one line.
    const pairs = data.global.prototypes.reduce((n, p) => n + p.classes.length, 0);
    expect(lines).toHaveLength(pairs);
    expect(pairs).toBeLessThanOrEqual(slots);
    expect(html.match(/stroke="#d62728"/g)?.length ?? 0).toBe(
      data.global.sharing.reduce((n, s) => n + s.classes.length, 0),
    );
  });

  it('is self-contained (the chart library inline, no address to fetch) and escapes what it quotes', () => {
    expect(html).toContain(CHART_STUB);
    expect(html).not.toMatch(/\b(src|href)="(https?:)?\/\//);
    expect(html).toContain('protopool train &lt;tiny &amp; &quot;quoted&quot;&gt;');
    expect(html).not.toContain('<tiny & "quoted">');
  });
});
