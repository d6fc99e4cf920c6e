// End to end: a training run's report.html, opened offline in headless Chromium — the curves draw, every
// picture loads, and the page asks the network for nothing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/local-stack';
import { CLI, TINY_CONFIG } from '../helpers/backend-process';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results');

describe.skipIf(!existsSync(CHROMIUM))('training report in a real browser', () => {
  let browser: Browser;
  let report: string;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-report-e2e-'));
    const config = join(dir, 'tiny.json');
    await writeFile(config, JSON.stringify(TINY_CONFIG));
    const out = join(dir, 'run');
    const r = spawnSync(
      process.execPath,
      [CLI, 'train', '--data', 'fashion-mnist:embedded', '--config', config, '--out', out, '--json'],
      { encoding: 'utf8', env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' } },
    );
    expect(r.status, r.stderr).toBe(0);
    report = JSON.parse(r.stdout.trim().split('\n').at(-1)!).report;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless'] });
    await mkdir(SHOTS, { recursive: true });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('draws its three curves and every patch, with no page error and no request leaving the file', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${report}`);
    // Chart.js draws into each canvas: some pixel is not transparent.
    const drawn = await page.$$eval('canvas', (cs) =>
      cs.map((c) => {
        const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        return d.some((v, i) => i % 4 === 3 && v > 0);
      }),
    );
    expect(drawn).toEqual([true, true, true]);
    const images = await page.$$eval('img', (is) => is.map((i) => (i as HTMLImageElement).naturalWidth > 0));
    expect(images.length).toBeGreaterThan(0);
    expect(images.every(Boolean)).toBe(true);
    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:'))).toEqual([]);
    await page.screenshot({ path: join(SHOTS, 'report.png'), fullPage: true });
  }, 60_000);
});
