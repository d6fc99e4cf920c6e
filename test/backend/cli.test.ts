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
    const r = run([
      '--engine',
      'wasm',
      '--threads',
      '2',
      'evaluate',
      '--model',
      'models/fashion-mnist',
      '--data',
      'fashion-mnist:embedded',
      '--limit',
      '64',
    ]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      'engine: wasm (SIMD, 2 threads); native kernels off: not used with --engine wasm',
    );
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).examples).toBe(64);
  });

  it.skipIf(!nativeBuilt)('gives oneDNN the threads, not wasm, when the native kernels run', () => {
    const args = [
      'evaluate',
      '--model',
      'models/fashion-mnist',
      '--data',
      'fashion-mnist:embedded',
      '--limit',
      '64',
    ];
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
    const r = run(
      ['evaluate', '--model', 'models/fashion-mnist', '--data', 'fashion-mnist:embedded', '--limit', '8'],
      {
        PROTOPOOL_ENGINE: 'auto',
        PROTOPOOL_NATIVE: '0',
      },
    );
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      'engine: wasm (SIMD, 1 thread); native kernels off: turned off by PROTOPOOL_NATIVE=0',
    );
    const forced = run(
      [
        '--engine',
        'native',
        'evaluate',
        '--model',
        'models/fashion-mnist',
        '--data',
        'fashion-mnist:embedded',
      ],
      {
        PROTOPOOL_NATIVE: '0',
      },
    );
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
  it('SIGINT mid-epoch stops after the current step, not at the end of the epoch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-sigint-'));
    const out = join(dir, 'out');
    const config = join(dir, 'long-epoch.json');
    // One joint epoch of ~60 steps over cached images: the case where the loop never yielded before.
    await writeFile(
      config,
      JSON.stringify({
        ...TINY,
        epochs: { warmup: 0, joint: 2, lastLayer: 0 },
        limits: { train: 2000, test: 64 },
      }),
    );
    const child = spawn(
      process.execPath,
      [CLI, 'train', '--data', 'fashion-mnist:embedded', '--out', out, '--config', config],
      {
        env: { ...process.env, PROTOPOOL_ENGINE: 'wasm' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (c) => {
      stderr += String(c);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // The progress bar's first step: training is under way inside epoch 1.
    while (!/epoch 1\/2 joint\s+\S+ [1-9]\d*\/\d+/.test(stderr)) {
      if (child.exitCode !== null) throw new Error(`training ended early:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGINT');
    const code = await exited;
    expect(code).toBe(1);
    expect(stderr).toContain('SIGINT: stopping after this step');
    expect(stderr).toMatch(/training stopped during epoch 1; 0 epoch\(s\) are checkpointed/);
    // Stopped inside the epoch: it was never finished, evaluated or checkpointed.
    expect((await events(out)).filter((e) => e.event === 'epoch')).toEqual([]);
  });
});
