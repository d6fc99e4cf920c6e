// End to end: the real backend process serving both shipped models and the edge under wrangler dev, driven in
// headless Chromium — open on the parts model, pick a sample, switch to Fashion-MNIST, upload an image, read
// the prediction, check the heatmaps drew, look at each model's gallery.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalStack, ROOT, SHIPPED_MODELS, startLocalStack } from '../../scripts/local-stack';
import { freePort } from '../helpers/backend-process';
import { png } from '../helpers/image-files';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results');
const noBrowser = !existsSync(CHROMIUM);
const noModel = SHIPPED_MODELS.some((m) => !existsSync(join(m.dir, 'manifest.json')));
if (noBrowser)
  console.warn(`e2e: ${CHROMIUM} not found — install it (apt-get install chromium) to run the browser test`);
if (noModel) console.warn('e2e: a shipped model is missing under models/ — the browser test needs both');
const missing = noBrowser || noModel;

describe.skipIf(missing)('demo page in a real browser', () => {
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    stack = await startLocalStack({
      backendPort: await freePort(),
      edgePort: await freePort(),
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${stack.edgeUrl}/#key=${stack.apiKey}`);
    await mkdir(SHOTS, { recursive: true });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  const manifestOf = async (model: string) =>
    (await (await fetch(`${stack.edgeUrl}/v1/model?model=${model}`)).json()) as {
      version: string;
      classes: string[];
      prototypes: unknown[];
      architecture: { slotsPerClass: number };
    };

  it('opens on the parts model with its test images, and classifies one by the parts it shows', async () => {
    await expect.poll(() => page.locator('#model').inputValue(), { timeout: 15_000 }).toBe('parts');
    expect(await page.locator('#model option').allTextContents()).toEqual([
      expect.stringMatching(/^parts — 15 classes, 30 prototypes, 97\.2% test accuracy$/),
      expect.stringMatching(/^fashion-mnist — 10 classes, 21 prototypes, 87\.0% test accuracy$/),
    ]);
    const parts = await manifestOf('parts');
    const samples = page.locator('.samples:visible button');
    expect(await samples.count()).toBe(parts.classes.length);
    // The sample of class 3 (a parts test image the shipped model classifies right).
    const label = parts.classes[3]!;
    expect(await samples.nth(3).getAttribute('data-label')).toBe(label);
    await samples.nth(3).click();
    await expect.poll(() => page.locator('#pred').textContent(), { timeout: 30_000 }).toMatch(/ — \d+\.\d%$/);
    expect(await page.locator('#pred').textContent()).toMatch(new RegExp(`^${label} — \\d+\\.\\d%$`));
    await expect.poll(() => page.locator('.slot canvas').count()).toBe(parts.architecture.slotsPerClass);
    // Each slot's patch came from this model: its URL names the model and the version the answer carried.
    const srcs = await page
      .locator('.slot img.patch')
      .evaluateAll((i) => i.map((x) => (x as HTMLImageElement).src));
    for (const src of srcs) expect(src).toContain(`model=parts`);
    for (const src of srcs) expect(src).toContain(`v=${parts.version}`);
    await page.screenshot({ path: join(SHOTS, 'demo-parts.png'), fullPage: true });
  }, 60_000);

  it('switches to Fashion-MNIST: its samples, its answer, each slot’s heatmap beside its training patch', async () => {
    await page.locator('#model').selectOption('fashion-mnist');
    expect(await page.locator('#result').isHidden()).toBe(true);
    const fashion = await manifestOf('fashion-mnist');
    expect(await page.locator('.samples:visible button').count()).toBe(fashion.classes.length);
    await page.getByRole('button', { name: 'Trouser' }).first().click();
    await page.locator('#pred').waitFor({ state: 'visible', timeout: 30_000 });
    await expect
      .poll(() => page.locator('#pred').textContent(), { timeout: 30_000 })
      .toMatch(/^Trouser — \d+\.\d%$/);
    const manifest = fashion;
    await expect.poll(() => page.locator('.slot canvas').count()).toBe(manifest.architecture.slotsPerClass);
    // The heatmap really drew: the canvas is not one flat colour.
    const distinct = await page
      .locator('.slot canvas')
      .first()
      .evaluate((c: HTMLCanvasElement) => {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        const seen = new Set<number>();
        for (let i = 0; i < d.length; i += 4 * 37) seen.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
        return seen.size;
      });
    expect(distinct).toBeGreaterThan(20);
    // Each training patch image loaded (naturalWidth > 0 means the PNG arrived and decoded).
    const widths = await page
      .locator('.slot img.patch')
      .evaluateAll((imgs) =>
        Promise.all((imgs as HTMLImageElement[]).map((i) => i.decode().then(() => i.naturalWidth))),
      );
    expect(widths.every((w) => w > 0)).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'demo-classify.png'), fullPage: true });
  }, 60_000);

  it('classifies an uploaded PNG and says so when the cache answers the second time', async () => {
    const sample = await page.getByRole('button', { name: 'Sneaker' }).first().getAttribute('data-png');
    const png = Buffer.from(sample!.split(',')[1]!, 'base64');
    await page.locator('#file').setInputFiles({ name: 'sneaker.png', mimeType: 'image/png', buffer: png });
    await expect.poll(() => page.locator('#pred').textContent(), { timeout: 30_000 }).toMatch(/^Sneaker/);
    await page.locator('#file').setInputFiles([]);
    await page.locator('#file').setInputFiles({ name: 'again.png', mimeType: 'image/png', buffer: png });
    await expect.poll(() => page.locator('#cache').textContent(), { timeout: 30_000 }).toBe('(cache HIT)');
  }, 60_000);

  it('says an upload looks like nothing the model knows (a white square), and not for a real sample', async () => {
    // The sample just classified was not flagged: no warning on screen.
    expect(await page.locator('#novelty').isHidden()).toBe(true);
    const white = png('grey', 28, 28, new Array(28 * 28).fill(255));
    await page.locator('#file').setInputFiles([]);
    await page.locator('#file').setInputFiles({ name: 'white.png', mimeType: 'image/png', buffer: white });
    await expect
      .poll(() => page.locator('#novelty').textContent(), { timeout: 30_000 })
      .toMatch(
        /^This looks like nothing the model was trained on: .*\(novelty 1\.00: 100% of training images/,
      );
    expect(await page.locator('#novelty').isVisible()).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'demo-novelty.png'), fullPage: true });
  }, 60_000);

  it('shows each model’s prototype gallery with which classes share each prototype', async () => {
    await page.getByRole('tab', { name: 'Prototypes' }).click();
    const fashion = await manifestOf('fashion-mnist');
    await expect
      .poll(() => page.locator('.card').count(), { timeout: 15_000 })
      .toBe(fashion.prototypes.length);
    expect(await page.locator('#gallery-title').textContent()).toMatch(/prototypes in use \(pool of \d+\)/);
    // Switching model redraws the gallery from the other manifest.
    await page.locator('#model').selectOption('parts');
    const parts = await manifestOf('parts');
    await expect.poll(() => page.locator('.card').count(), { timeout: 15_000 }).toBe(parts.prototypes.length);
    expect(await page.locator('#gallery-title').textContent()).toBe(
      `${parts.prototypes.length} prototypes in use (pool of 40), shared by 15 classes`,
    );
    // Every card's training patch arrived from the parts model and decoded.
    const widths = await page
      .locator('.card img')
      .evaluateAll((imgs) =>
        Promise.all((imgs as HTMLImageElement[]).map((i) => i.decode().then(() => i.naturalWidth))),
      );
    expect(widths).toHaveLength(parts.prototypes.length);
    expect(widths.every((w) => w > 0)).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'demo-gallery.png'), fullPage: true });
  }, 60_000);
});
