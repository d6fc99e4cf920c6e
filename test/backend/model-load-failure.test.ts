// A model directory that passes its checksums and still cannot be built leaves no tensor behind: a server
// reloading on SIGHUP must not leak a half-built model each time an operator points it at such a directory.
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelManifest } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModelDir } from '../../gpu-backend/src/io/model-files';
import { ModelService } from '../../gpu-backend/src/server/model-service';
import { trainTinyModel } from '../helpers/backend-process';

let broken: string;

beforeAll(async () => {
  const good = await trainTinyModel(await mkdtemp(join(tmpdir(), 'pp-load-')));
  broken = join(await mkdtemp(join(tmpdir(), 'pp-load-broken-')), 'model');
  await cp(good, broken, { recursive: true });
  // The head's first weight claims twice its rows: head.bin is too short for it. The manifest's checksum
  // is updated to match, so only building the model can find out.
  const headPath = join(broken, 'head.json');
  const head = JSON.parse(await readFile(headPath, 'utf8')) as { weights: { shape: number[] }[] };
  head.weights[0]!.shape[0]! *= 2;
  const bytes = Buffer.from(JSON.stringify(head));
  await writeFile(headPath, bytes);
  const manifestPath = join(broken, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ModelManifest;
  const entry = manifest.files.find((f) => f.path === 'head.json')!;
  entry.bytes = bytes.byteLength;
  entry.sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFile(manifestPath, JSON.stringify(manifest));
});

describe('a model directory that cannot be built', () => {
  it('is refused by loadModelDir with every tensor it made disposed', async () => {
    const before = tf.memory().numTensors;
    await expect(loadModelDir(broken)).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is refused by ModelService.load (what serve and SIGHUP call) with every tensor disposed', async () => {
    const before = tf.memory().numTensors;
    await expect(ModelService.load(broken, { maxBatch: 4, maxWaitMs: 1, maxQueue: 8 })).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });
});
