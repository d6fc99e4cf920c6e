// `protopool`: the command line (train, evaluate, explain, serve, deploy); bin/protopool.js runs `main`.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { zodIssueLines } from '@protopool/shared';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { limitSplit } from '../data/dataset';
import type { Normalisation } from '../data/image-split';
import { openDataset } from '../data/specs';
import { ENGINE_CHOICES, engineSummary, initEngine } from '../engine';
import { calibrateOnSplit } from '../explain/novelty';
import { exists, writeFileAtomic } from '../io/files';
import { loadModelDir } from '../io/model-files';
import { isResnet, RESNETS } from '../model/backbones';
import { writeReport } from '../report/write-report';
import { startServer } from '../server/serve';
import { latestCheckpoint } from '../train/checkpoint';
import { mergeConfig, normalisationOf, TrainConfig } from '../train/config';
import { evaluate } from '../train/evaluate';
import { measureParts } from '../train/interpretability';
import { PRESETS, presetConfig } from '../train/presets';
import { train } from '../train/trainer';
import { checkResnetKeys } from '../weights/import-resnet';
import { readCheckpoint } from '../weights/read-checkpoint';
import { CheckpointError, type StateDict } from '../weights/state-dict';
import { addDeployCommands } from './deploy';
import { EXIT_FAILURE, EXIT_USAGE, modelDir, UsageError } from './errors';
import { addExplainCommands } from './explain';
import { trainReporter } from './progress';
import { collectModel, defaultModelOf, servedModels } from './serve-models';

/** Every kind of data spec (data/specs.ts has the options). */
const DATA_HELP =
  'dataset: fashion-mnist[:<dir>|:embedded], parts[:<seed>], imagefolder:<dir>, cub:<dir> or cars:<dir>, ' +
  'options after ? (e.g. cub:<dir>?size=224&crop=box)';

/** Counts that may be zero (epochs of a phase, a seed, a port the OS picks, no batching wait). */
function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError('expected a non-negative integer');
  }
  return n;
}

/** Sizes and limits, which zero would make meaningless (a batch of 0, 0 threads). */
function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

async function openData(spec: string, skipCorrupt = false, normalisation?: Normalisation) {
  try {
    return await openDataset(spec, { skipCorrupt, ...(normalisation ? { normalisation } : {}) });
  } catch (err) {
    throw new UsageError(`--data ${spec}: ${(err as Error).message}`);
  }
}

/** The fields of a config that decide the input convention, read before the whole config is checked. */
function peekModel(raw: unknown): { weights?: string; normalise?: TrainConfig['model']['normalise'] } {
  const { weights, normalise } = TrainConfig.shape.model.unwrap().shape;
  // Not strict: the model's other fields are checked with the whole config.
  const model = z.object({ weights, normalise });
  const found = model.safeParse((raw as { model?: unknown } | null)?.model ?? {});
  // A bad field is reported with every other one when the whole config is parsed.
  return found.success ? found.data : {};
}

/** Refuses a checkpoint that cannot feed the configured backbone, naming every key, before anything is written. */
async function checkWeights(model: TrainConfig['model']): Promise<void> {
  const file = model.weights!;
  if (!isResnet(model.backbone)) {
    throw new UsageError(
      `model.weights: a PyTorch checkpoint loads into a ResNet backbone (${RESNETS.join(', ')}), not "${model.backbone}" (set model.backbone)`,
    );
  }
  let dict: StateDict | undefined;
  try {
    dict = await readCheckpoint(file);
    checkResnetKeys(dict, model.backbone, model.stages);
  } catch (err) {
    if (err instanceof CheckpointError) throw new UsageError(`--weights ${err.message}`);
    throw err;
  } finally {
    await dict?.close();
  }
}

async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${path}: cannot read (${(err as NodeJS.ErrnoException).code})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config ${path}: not valid JSON (${(err as Error).message})`);
  }
}

function parseConfig(raw: unknown, source: string): TrainConfig {
  const parsed = TrainConfig.safeParse(raw);
  if (!parsed.success) {
    throw new UsageError(`${source}: ${zodIssueLines(parsed.error, 'field').join('; ')}`);
  }
  return parsed.data;
}

export function program(): Command {
  const cli = new Command('protopool')
    .description('ProtoPool: interpretable prototype-part image classification (TensorFlow.js)')
    .addOption(
      new Option('--engine <name>', 'TF.js engine')
        .choices([...ENGINE_CHOICES])
        .default(process.env.PROTOPOOL_ENGINE ?? 'auto'),
    )
    .option(
      '--threads <n>',
      "compute threads: oneDNN's with native kernels, XNNPACK's on wasm alone; default 1 or $PROTOPOOL_THREADS. " +
        'More threads than idle cores is slower (each step waits for the busiest core)',
      positiveInt,
    )
    .hook('preAction', (cmd) => {
      const threads = cmd.opts().threads as number | undefined;
      if (threads !== undefined) process.env.PROTOPOOL_THREADS = String(threads);
    })
    .showHelpAfterError()
    .exitOverride();

  cli
    .command('train')
    .description('train a ProtoPool model: warm-up, joint, projection, last-layer fine-tuning')
    .requiredOption('--data <spec>', DATA_HELP)
    .requiredOption('--out <dir>', 'output directory (checkpoints/, model/, train.jsonl)')
    .addOption(
      new Option('--preset <name>', 'a published recipe (or finetune-resnet50 for your own photos)').choices(
        Object.keys(PRESETS),
      ),
    )
    .option('--weights <file>', 'PyTorch checkpoint (.pth/.pt/.safetensors) of the ResNet backbone')
    .option('--config <file.json>', 'training configuration (JSON; fields in docs/training.md)')
    .option('--epochs <n>', 'joint-phase epochs (the main phase)', nonNegativeInt)
    .option('--warmup-epochs <n>', 'warm-up epochs (backbone frozen)', nonNegativeInt)
    .option('--last-layer-epochs <n>', 'last-layer fine-tuning epochs', nonNegativeInt)
    .option('--batch-size <n>', 'batch size', positiveInt)
    .option('--train-limit <n>', 'use only the first n training images', positiveInt)
    .option('--test-limit <n>', 'use only the first n test images', positiveInt)
    .option('--seed <n>', 'random seed', nonNegativeInt)
    .option('--resume', 'continue from the last checkpoint in --out')
    .option('--skip-corrupt', 'skip and count unreadable images instead of stopping')
    .option('--json', 'JSON lines on stdout instead of progress bars')
    .action(async (o) => {
      const file = o.config ? await readConfigFile(o.config) : {};
      const preset = o.preset ? PRESETS[o.preset]! : undefined;
      // Precedence: the data's defaults < the preset < the config file < flags.
      const over = (classes: number) => {
        const layered = mergeConfig(o.preset ? presetConfig(o.preset, classes) : {}, file);
        return o.weights ? mergeConfig(layered, { model: { weights: o.weights } }) : layered;
      };
      const resumeFrom = o.resume ? await latestCheckpoint(resolve(o.out)).catch(() => null) : null;
      // The input convention must be known before the data is opened: it replaces the images' statistics.
      const early = resumeFrom
        ? ((await readConfigFile(join(resumeFrom, 'trainer.json'))) as { config: TrainConfig }).config.model
        : peekModel(over(0));
      if (preset?.checkpoint && !early.weights) {
        throw new UsageError(
          `--preset ${o.preset} starts from a pretrained backbone: pass --weights <file> (${preset.checkpoint})`,
        );
      }
      // A resumed run reads its weights from the checkpoint: the original file may be gone.
      if (!resumeFrom && early.weights && !(await exists(early.weights))) {
        throw new UsageError(
          `${o.weights ? '--weights' : `${o.config}: field model.weights`}: ${early.weights}: no such file`,
        );
      }
      const dataset = await openData(o.data, Boolean(o.skipCorrupt), normalisationOf(early));
      const raw = mergeConfig(dataset.trainDefaults ?? {}, over(dataset.classes.length));
      const config = parseConfig(
        raw,
        o.config ?? (o.preset ? `preset ${o.preset}` : 'default configuration'),
      );
      if (o.epochs !== undefined) config.epochs.joint = o.epochs;
      if (o.warmupEpochs !== undefined) config.epochs.warmup = o.warmupEpochs;
      if (o.lastLayerEpochs !== undefined) config.epochs.lastLayer = o.lastLayerEpochs;
      if (o.batchSize !== undefined) config.batchSize = Math.max(1, o.batchSize);
      if (o.trainLimit !== undefined) config.limits.train = Math.max(1, o.trainLimit);
      if (o.testLimit !== undefined) config.limits.test = Math.max(1, o.testLimit);
      if (o.seed !== undefined) config.seed = o.seed;
      if (config.model.weights && !resumeFrom) await checkWeights(config.model);
      const out = resolve(o.out);
      const checkpoint = await latestCheckpoint(out).catch(() => null);
      if (checkpoint && !o.resume) {
        throw new UsageError(
          `--out ${o.out}: already holds a training run (${checkpoint}); add --resume to continue it`,
        );
      }
      const engine = await initEngine(cli.opts().engine);
      const reporter = trainReporter({ json: Boolean(o.json), logFile: join(out, 'train.jsonl') });
      if (!o.json) {
        process.stderr.write(`engine: ${engineSummary(engine)}\ndata: ${dataset.description}\n`);
        if (dataset.trainDefaults)
          process.stderr.write(`config: the data's defaults ${JSON.stringify(dataset.trainDefaults)}\n`);
      }
      const command = `protopool ${process.argv.slice(2).join(' ')}`;
      // Ctrl-C / SIGTERM: stop after the current step; checkpoints on disk stay valid. A second signal kills.
      const stop = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => {
        if (stop.signal.aborted) process.exit(130);
        process.stderr.write(`\n${sig}: stopping after this step (again to quit at once)\n`);
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const result = await train({
          dataset,
          config,
          outDir: out,
          resume: Boolean(o.resume),
          command,
          events: reporter,
          signal: stop.signal,
        });
        const skipped = dataset.train.skipped?.count ?? 0;
        const summary = {
          modelDir: result.modelDir,
          resumedFrom: result.resumedFrom,
          ...result.final,
          skippedImages: skipped,
        };
        reporter.stop();
        // The log is complete now (the reporter appends synchronously): the report reads it whole.
        const report = await writeReport(result.modelDir);
        if (!o.json) process.stderr.write(`report: ${report.path}\n`);
        process.stdout.write(`${JSON.stringify({ ...summary, report: report.path })}\n`);
      } finally {
        reporter.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  cli
    .command('calibrate')
    .description(
      "store a model's novelty calibration (its training images' best prototype similarity) in its manifest; train does this itself",
    )
    .requiredOption('--model <dir>', 'model directory (or a training --out directory)')
    .requiredOption('--data <spec>', DATA_HELP)
    .action(async (o) => {
      const dir = await modelDir(o.model);
      const dataset = await openData(o.data);
      await initEngine(cli.opts().engine);
      const { model, manifest } = await loadModelDir(dir);
      try {
        if (manifest.classes.join('\n') !== dataset.classes.join('\n'))
          throw new UsageError(`--data ${o.data}: its classes are not the model's`);
        const used = manifest.prototypes.map((p) => p.id);
        const novelty = await calibrateOnSplit(model, dataset.train, used, 128);
        // Only the manifest changes: the weights, and so the version and the edge's cache ids, stay.
        await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, novelty }, null, 2));
        const threshold = novelty.percentiles[novelty.flagBelowPercentile]!;
        process.stdout.write(`${JSON.stringify({ model: dir, images: novelty.images, threshold })}\n`);
      } finally {
        model.dispose();
      }
    });

  cli
    .command('report')
    .description(
      'one self-contained HTML page of a trained model: training curves, slot assignment, sharing graph, prototypes, metrics',
    )
    .requiredOption('--model <dir>', 'model directory (or a training --out directory)')
    .option('--out <file>', 'where to write it (default: report.html beside the model directory)')
    .action(async (o) => {
      const dir = await modelDir(o.model);
      const report = await writeReport(dir, o.out === undefined ? undefined : resolve(o.out));
      process.stdout.write(`${JSON.stringify(report)}\n`);
    });

  cli
    .command('evaluate')
    .description('accuracy and loss of a trained model on a data split; the last line is one JSON object')
    .requiredOption('--model <dir>', 'model directory (or a training --out directory)')
    .requiredOption('--data <spec>', DATA_HELP)
    .addOption(new Option('--split <name>', 'which split').choices(['train', 'test']).default('test'))
    .option('--limit <n>', 'use only the first n images', positiveInt)
    .option('--json', 'print only the JSON result')
    .action(async (o) => {
      const dir = await modelDir(o.model);
      const dataset = await openData(o.data);
      const engine = await initEngine(cli.opts().engine);
      const { model, manifest } = await loadModelDir(dir);
      try {
        if (manifest.classes.length !== dataset.classes.length) {
          throw new UsageError(
            `--data ${o.data}: ${dataset.classes.length} classes, the model has ${manifest.classes.length}`,
          );
        }
        const split = limitSplit(o.split === 'train' ? dataset.train : dataset.test, o.limit);
        const r = await evaluate(model, split);
        // Data with part annotations (CUB layout): the interpretability metrics too.
        const parts = split.partNames?.length ? await measureParts(model, split) : undefined;
        if (!o.json)
          process.stderr.write(
            `engine: ${engineSummary(engine)}\nmodel: ${dir} (${manifest.version.slice(0, 12)})\n`,
          );
        process.stdout.write(
          `${JSON.stringify({
            accuracy: r.accuracy,
            loss: r.loss,
            prototypesUsed: r.prototypesUsed,
            ...(parts
              ? {
                  consistency: parts.consistency,
                  consistencyShared: parts.consistencyShared,
                  stability: parts.stability,
                  purity: parts.purity,
                  localSize: parts.localSize,
                }
              : {}),
            examples: r.examples,
            split: o.split,
            data: dataset.description,
            modelVersion: manifest.version,
          })}\n`,
        );
      } finally {
        model.dispose();
      }
    });
  cli
    .command('serve')
    .description(
      'serve one or more models over HTTP (SageMaker container contract: GET /ping, POST /invocations; /v1; /v2)',
    )
    .option(
      '--model <[name=]dir>',
      "a model directory, served under name (default: the directory's name); repeat to serve several. A directory " +
        'of model directories serves each under its own name. Default: $SM_MODEL_DIR or /opt/ml/model. SIGHUP ' +
        'reloads every model that changed, e.g. after repointing a symlink',
      collectModel,
      [],
    )
    .option(
      '--default-model <name>',
      'the model answering requests that name none (default: the first --model)',
    )
    .option('--port <n>', 'port', nonNegativeInt, Number(process.env.SAGEMAKER_BIND_TO_PORT ?? 8080))
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .option('--insecure', 'accept unsigned requests (local experiments only; needs no PROTOPOOL_HMAC_SECRET)')
    .option('--max-batch <n>', 'largest micro-batch', positiveInt, 32)
    .option('--max-wait-ms <n>', 'how long a request waits to be batched (0: no batching)', nonNegativeInt, 5)
    .option('--max-queue <n>', 'queued requests beyond which the server answers 503', positiveInt, 256)
    .option('--max-body-bytes <n>', 'largest request body', positiveInt, 8 * 1024 * 1024)
    .option('--no-metrics', 'do not serve GET /metrics (Prometheus text, unsigned like /ping)')
    .action(async (o) => {
      const secret = process.env.PROTOPOOL_HMAC_SECRET || undefined;
      if (!secret && !o.insecure) {
        throw new UsageError(
          'PROTOPOOL_HMAC_SECRET is not set: refusing to serve unsigned requests (add --insecure for local experiments)',
        );
      }
      const asked: string[] = o.model.length ? o.model : [process.env.SM_MODEL_DIR ?? '/opt/ml/model'];
      const models = await servedModels(asked);
      const defaultModel = defaultModelOf(models, o.defaultModel);
      const log = (e: Record<string, unknown>) =>
        process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
      const server = await startServer({
        // Re-resolved at each reload: the operator repoints --model (a symlink), then sends SIGHUP.
        models: models.map((m) => ({ name: m.name, locate: () => modelDir(m.given) })),
        defaultModel,
        port: o.port,
        host: o.host,
        secret: o.insecure ? undefined : secret,
        engine: cli.opts().engine,
        batching: {
          maxBatch: Math.max(1, o.maxBatch),
          maxWaitMs: o.maxWaitMs,
          maxQueue: Math.max(1, o.maxQueue),
        },
        maxBodyBytes: Math.max(1024, o.maxBodyBytes),
        metrics: o.metrics,
        log,
      });
      // Installed before the model is in (a SIGHUP's default is to end the process); one during startup waits.
      const onHangup = () => {
        log({ event: 'reload_requested', signal: 'SIGHUP' });
        void server.reload();
      };
      process.on('SIGHUP', onHangup);
      try {
        await server.ready;
      } catch (err) {
        process.off('SIGHUP', onHangup);
        await server.close();
        throw new Error(`cannot load ${(err as Error).message}`);
      }
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log({ event: 'draining', signal: sig });
          process.off('SIGHUP', onHangup);
          void server.close().then(() => {
            log({ event: 'stopped' });
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
  addExplainCommands(cli);
  addDeployCommands(cli);
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not failures; everything else commander reports is a usage error.
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' ? 0 : EXIT_USAGE;
    }
    const usage = err instanceof UsageError;
    process.stderr.write(`protopool: ${usage ? '' : 'error: '}${(err as Error).message}\n`);
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
}
