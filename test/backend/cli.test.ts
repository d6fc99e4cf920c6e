// The protopool CLI as users run it: exit codes, nothing written on bad input, kill -9 and --resume.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNativeKernels } from '@protopool/native-kernels';
import { describe, expect, it } from 'vitest';
import { loadModelDir } from '../../gpu-backend/src/io/model-files';
import { CLI } from '../helpers/backend-process';

const TINY = {
  model: { prototypes: 12, slotsPerClass: 2, depth: 16 },
  batchSize: 32,
  epochs: { warmup: 1, joint: 3, lastLayer: 1 },
  gumbelTime: 2,
  limits: { train: 320, test: 64 },
};

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PROTOPOOL_ENGINE: 'wasm', ...env },
  });
}

const nativeBuilt = loadNativeKernels().ok;

/** `evaluate` on the shipped model and its embedded data: the quickest whole run of an engine. */
const EVALUATE_SHIPPED = ['evaluate', '--model', 'models/fashion-mnist', '--data', 'fashion-mnist:embedded'];

async function events(out: string): Promise<{ event: string; epoch?: number; epochsCompleted?: number }[]> {
  const file = join(out, 'train.jsonl');
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('protopool CLI', () => {
  it.each([
    [['train', '--data', 'nope', '--out', 'X'], /unknown data spec "nope"/],
    [['train', '--data', 'fashion-mnist:/does/not/exist', '--out', 'X'], /no such directory/],
    [
      ['train', '--data', 'fashion-mnist', '--out', 'X', '--epochs', 'abc'],
      /expected a non-negative integer/,
    ],
    [['train', '--data', 'fashion-mnist', '--out', 'X', '--batch-size', '0'], /expected a positive integer/],
    [['train', '--data', 'fashion-mnist', '--out', 'X', '--threads', '0'], /expected a positive integer/],
    [['evaluate', '--model', '/does/not/exist', '--data', 'fashion-mnist'], /no manifest.json/],
    [
      ['train', '--data', 'fashion-mnist', '--out', 'X', '--config', '/does/not/exist.json'],
      /cannot read \(ENOENT\)/,
    ],
  ])('exits 2 with a clear message and writes nothing: %j', async (args, message) => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-cli-'));
    const out = join(dir, 'out');
    const r = run(args.map((a) => (a === 'X' ? out : a)));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });

  it('runs the wasm engine on both cores with --engine wasm --threads 2, and exits when done', () => {
    const r = run(['--engine', 'wasm', '--threads', '2', ...EVALUATE_SHIPPED, '--limit', '64']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      'engine: wasm (SIMD, 2 threads); native kernels off: not used with --engine wasm',
    );
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).examples).toBe(64);
  });

  it.skipIf(!nativeBuilt)('gives oneDNN the threads, not wasm, when the native kernels run', () => {
    const args = [...EVALUATE_SHIPPED, '--limit', '64'];
    const r = run(['--threads', '2', ...args], { PROTOPOOL_ENGINE: 'auto' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(
      /engine: wasm \(SIMD, 1 thread\) \+ oneDNN 2\.\d+\.\d+ kernels \(\w+, 2 threads\)\n/,
    );
    // The same accuracy as on wasm's kernels: the figures are the same model's.
    const wasm = run(['--engine', 'wasm', ...args]);
    const [a, b] = [r, wasm].map((x) => JSON.parse(x.stdout.trim().split('\n').at(-1)!));
    expect(a.accuracy).toBe(b.accuracy);
  });

  it('falls back to wasm, saying why, when the native kernels are turned off', () => {
    const r = run([...EVALUATE_SHIPPED, '--limit', '8'], { PROTOPOOL_ENGINE: 'auto', PROTOPOOL_NATIVE: '0' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      'engine: wasm (SIMD, 1 thread); native kernels off: turned off by PROTOPOOL_NATIVE=0',
    );
    const forced = run(['--engine', 'native', ...EVALUATE_SHIPPED], { PROTOPOOL_NATIVE: '0' });
    expect(forced.status).not.toBe(0);
    expect(forced.stderr).toContain('native: turned off by PROTOPOOL_NATIVE=0');
  });

  it('names the config file and field of a bad config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-cli-'));
    const config = join(dir, 'bad.json');
    await writeFile(config, JSON.stringify({ model: { prototypes: 0 } }));
    const r = run(['train', '--data', 'fashion-mnist:embedded', '--out', join(dir, 'o'), '--config', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${config}: field model.prototypes: Too small`);
  });

  it('killed mid-epoch with SIGKILL, --resume continues from the last checkpoint and the model loads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-kill-'));
    const out = join(dir, 'out');
    const config = join(dir, 'tiny.json');
    await writeFile(config, JSON.stringify(TINY));
    const args = ['train', '--data', 'fashion-mnist:embedded', '--out', out, '--config', config, '--json'];
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Wait until two epochs are checkpointed and the third has started, then pull the plug.
    for (;;) {
      const done = (await events(out)).filter((e) => e.event === 'epoch').length;
      if (done >= 2) break;
      if (child.exitCode !== null) throw new Error('training ended before it could be killed');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(join(out, 'model'))).toBe(false);
    const resumed = run([...args, '--resume']);
    expect(resumed.status).toBe(0);
    const summary = JSON.parse(resumed.stdout.trim().split('\n').at(-1)!);
    // At most one epoch is lost: it resumes from the last completed one.
    expect(summary.resumedFrom).toBeGreaterThanOrEqual(2);
    const log = await events(out);
    expect(log.find((e) => e.event === 'resume')!.epochsCompleted).toBe(summary.resumedFrom);
    expect(log.filter((e) => e.event === 'epoch').map((e) => e.epoch)).toEqual(
      expect.arrayContaining([1, 2, 3, 4, 5]),
    );
    const { model } = await loadModelDir(summary.modelDir);
    model.dispose();
    // The run leaves its report beside the model: one chart point per epoch, the resumed ones once.
    expect(summary.report).toBe(join(out, 'report.html'));
    const page = await readFile(summary.report, 'utf8');
    const series = JSON.parse(/const S = (\{.*\});/.exec(page)![1]!) as { labels: string[] };
    expect(series.labels.map((l) => Number(l.split(' ')[0]))).toEqual([1, 2, 3, 4, 5]);
    const again = run(['report', '--model', out, '--out', join(dir, 'again.html')]);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout.trim())).toMatchObject({ path: join(dir, 'again.html') });
    // The chart library is inlined (Chart.js's own banner), so the page opens offline.
    expect(await readFile(join(dir, 'again.html'), 'utf8')).toContain('Chart.js v4.6.1');
    const evaluation = run([
      'evaluate',
      '--model',
      out,
      '--data',
      'fashion-mnist:embedded',
      '--limit',
      '64',
      '--json',
    ]);
    expect(evaluation.status).toBe(0);
    expect(JSON.parse(evaluation.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      accuracy: expect.any(Number),
      prototypesUsed: expect.any(Number),
      examples: 64,
    });
  });
});

describe('stopping a training run', () => {
  // One joint epoch of 24 steps over cached images (the case where the loop never yielded before), then
  // projection: the stop below lands inside the epoch.
  const LONG_EPOCH = {
    ...TINY,
    epochs: { warmup: 0, joint: 1, lastLayer: 0 },
    limits: { train: 768, test: 64 },
  };
  let whole: Promise<{ dir: string; accuracy: number }> | undefined;
  /** The same run never stopped, trained once for both signals. */
  const uninterrupted = (config: string) => {
    whole ??= (async () => {
      const dir = join(await mkdtemp(join(tmpdir(), 'pp-whole-')), 'out');
      const r = run(['train', '--data', 'fashion-mnist:embedded', '--out', dir, '--config', config]);
      expect(r.status, r.stderr).toBe(0);
      return { dir, accuracy: JSON.parse(r.stdout.trim().split('\n').at(-1)!).accuracy };
    })();
    return whole;
  };

  async function startTraining(out: string, config: string, signal: NodeJS.Signals) {
    const child = spawn(
      process.execPath,
      [CLI, 'train', '--data', 'fashion-mnist:embedded', '--out', out, '--config', config],
      { env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (c) => {
      stderr += String(c);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // The epoch's progress bar has started (its next redraw is 10 s away off a terminal): the first step
    // is under way, so the stop comes after one of the epoch's first steps.
    while (!/epoch 1\/1 joint\s+\S+ 0\/24/.test(stderr)) {
      if (child.exitCode !== null) throw new Error(`training ended early:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill(signal);
    return { code: await exited, stderr };
  }

  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s mid-epoch stops after the current step with a checkpoint, and --resume ends bit-identical to a run never stopped',
    async (signal) => {
      const dir = await mkdtemp(join(tmpdir(), 'pp-stop-'));
      const config = join(dir, 'long-epoch.json');
      await writeFile(config, JSON.stringify(LONG_EPOCH));
      const out = join(dir, 'stopped');
      const { code, stderr } = await startTraining(out, config, signal);
      expect(code).toBe(1);
      expect(stderr).toContain(`${signal}: stopping after this step`);
      const stopped = /training stopped after step (\d+) of 24 in epoch 1; checkpointed in (\S+) /.exec(
        stderr,
      );
      expect(stopped, stderr).not.toBeNull();
      const step = Number(stopped![1]);
      expect(step).toBeGreaterThanOrEqual(1);
      expect(step).toBeLessThan(24);
      // The checkpoint is the step it stopped at, and LATEST points to it.
      const name = `epoch-0000-step-${String(step).padStart(5, '0')}`;
      expect(stopped![2]).toBe(join(out, 'checkpoints', name));
      expect((await readFile(join(out, 'checkpoints', 'LATEST'), 'utf8')).trim()).toBe(name);
      expect((await events(out)).filter((e) => e.event === 'epoch')).toEqual([]);

      const resumed = run([
        'train',
        '--data',
        'fashion-mnist:embedded',
        '--out',
        out,
        '--config',
        config,
        '--resume',
      ]);
      expect(resumed.status, resumed.stderr).toBe(0);
      const reference = await uninterrupted(config);
      for (const file of ['weights.bin', 'head.bin']) {
        const [got, want] = await Promise.all(
          [out, reference.dir].map((d) => readFile(join(d, 'model', file))),
        );
        expect(got!.equals(want!), file).toBe(true);
      }
      const summary = JSON.parse(resumed.stdout.trim().split('\n').at(-1)!);
      expect(summary.resumedFrom).toBe(0);
      expect(summary.accuracy).toBe(reference.accuracy);
    },
  );
});
