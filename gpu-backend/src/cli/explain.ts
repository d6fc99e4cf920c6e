// `protopool explain` (JSON + pictures per image) and `protopool gallery` (every prototype at a glance).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { ClassifyOptions, explanationId, MAX_TOP_K } from '@protopool/shared';
import { ImageDecodeError, imageToInput } from '@protopool/shared/image';
import * as tf from '@tensorflow/tfjs';
import { type Command, InvalidArgumentError } from 'commander';
import { initImageCodecs } from '../data/image-node';
import { initEngine } from '../engine';
import { globalExplanation } from '../explain/global';
import { explainBatch } from '../explain/local';
import { explanationPage } from '../explain/page-html';
import { classCard, gallerySheet } from '../explain/pictures';
import { encodePng } from '../explain/render';
import { loadModelDir, readPrototypeImages } from '../io/model-files';
import { modelDir, UsageError } from './errors';

function topK(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_TOP_K)
    throw new InvalidArgumentError(`expected an integer in 1..${MAX_TOP_K}`);
  return n;
}

export function addExplainCommands(cli: Command): void {
  cli
    .command('explain')
    .description(
      'explain predictions: JSON evidence and a picture per image (heatmap + box beside each training patch)',
    )
    .requiredOption('--model <dir>', 'model directory (or a training --out directory)')
    .argument('<images...>', 'PNG or JPEG files')
    .option('--top-k <n>', 'classes to list (and explain, with --all-classes)', topK, 3)
    .option('--all-classes', 'evidence for every top-k class, not only the predicted one')
    .option('--out <dir>', 'where to write <image>.json and <image>.png')
    .option('--json', 'print the explanations as one JSON array on stdout')
    .option('--html', 'also write <image>.html: the answer as one page (cards, numbers), opens offline')
    .action(async (images: string[], o) => {
      if (o.html && !o.out) throw new UsageError('--html writes pages into --out <dir>: give one');
      const dir = await modelDir(o.model);
      const inputs: { file: string; bytes: Uint8Array }[] = [];
      for (const file of images) {
        try {
          inputs.push({ file, bytes: new Uint8Array(await readFile(file)) });
        } catch (err) {
          throw new UsageError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code})`);
        }
      }
      await initEngine(cli.opts().engine);
      await initImageCodecs();
      const { model, manifest } = await loadModelDir(dir);
      await model.freeze(); // as the server runs it, so both explain an image alike
      try {
        const { height, width, channels } = manifest.input;
        const options = ClassifyOptions.parse({ topK: o.topK, explainTopK: Boolean(o.allClasses) });
        const patches = o.out ? await readPrototypeImages(dir, manifest) : new Map<number, Uint8Array>();
        if (o.out) await mkdir(o.out, { recursive: true });
        const results = [];
        for (const { file, bytes } of inputs) {
          let data: Float32Array;
          try {
            data = await imageToInput(bytes, manifest.input);
          } catch (err) {
            if (err instanceof ImageDecodeError) throw new UsageError(`${file}: ${err.message}`);
            throw err;
          }
          const id = await explanationId(manifest.version, {
            dtype: 'float32',
            shape: [1, height, width, channels],
            data,
          });
          const x = tf.tensor4d(data, [1, height, width, channels]);
          const [e] = await explainBatch(model, manifest, x, [id], options).finally(() => x.dispose());
          results.push({ file, ...e! });
          const p = e!.prediction;
          if (!o.json) process.stderr.write(`${file}: ${p.label} (${(100 * p.probability).toFixed(1)}%)\n`);
          if (o.out) {
            const stem = basename(file, extname(file));
            await writeFile(join(o.out, `${stem}.json`), JSON.stringify(e, null, 2));
            const cards = new Map<number, Uint8Array>();
            for (const cls of e!.classes) {
              const card = classCard(data, manifest.input, e!, cls, patches);
              const suffix = e!.classes.length > 1 ? `-${cls.classIndex}` : '';
              const png = encodePng(card.rgba, card.width, card.height);
              cards.set(cls.classIndex, png);
              await writeFile(join(o.out, `${stem}${suffix}.png`), png);
            }
            if (o.html)
              await writeFile(join(o.out, `${stem}.html`), explanationPage(basename(file), e!, cards));
          }
        }
        if (o.json) process.stdout.write(`${JSON.stringify(results)}\n`);
      } finally {
        model.dispose();
      }
    });

  cli
    .command('gallery')
    .description(
      'every prototype: a sheet of training patches (gallery.png) and the global explanation (gallery.json)',
    )
    .requiredOption('--model <dir>', 'model directory (or a training --out directory)')
    .requiredOption('--out <dir>', 'output directory')
    .action(async (o) => {
      const dir = await modelDir(o.model);
      const { readManifest, verifyFiles } = await import('../io/model-files');
      const manifest = await readManifest(dir);
      await verifyFiles(dir, manifest);
      const patches = await readPrototypeImages(dir, manifest);
      await mkdir(o.out, { recursive: true });
      const sheet = gallerySheet(patches);
      await writeFile(join(o.out, 'gallery.png'), encodePng(sheet.rgba, sheet.width, sheet.height));
      const g = globalExplanation(manifest);
      await writeFile(
        join(o.out, 'gallery.json'),
        JSON.stringify({ order: [...patches.keys()].sort((a, b) => a - b), ...g }, null, 2),
      );
      process.stdout.write(
        `${JSON.stringify({ prototypes: g.compactness.prototypesUsed, shared: g.compactness.sharedPrototypes, out: o.out })}\n`,
      );
    });
}
