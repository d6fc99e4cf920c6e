// Changing the model without downtime (#19): `protopool serve --model <symlink>`, repoint it, SIGHUP — under load.
import { mkdir, mkdtemp, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, ModelManifest, signRequest, TENSOR_MEDIA_TYPE, tensor } from '@protopool/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendProcess, startBackend, trainTinyModel } from '../helpers/backend-process';
import { seededArray } from '../helpers/random';

const SECRET = 'test-secret-not-for-production';
const body = encodeFrame(tensor('float32', [1, 28, 28, 1], seededArray(784, 11)));

let work: string;
let link: string;
let dirA: string;
let dirB: string;
let versionA: string;
let versionB: string;
let backend: BackendProcess;

interface Answer {
  status: number;
  version?: string;
}

async function invoke(): Promise<Answer> {
  const headers = {
    'content-type': TENSOR_MEDIA_TYPE,
    ...(await signRequest(SECRET, { method: 'POST', path: '/invocations', body })),
  };
  try {
    const res = await fetch(`${backend.url}/invocations`, { method: 'POST', headers, body });
    const json = (await res.json()) as { modelVersion?: string };
    return { status: res.status, version: json.modelVersion };
  } catch {
    return { status: 0 }; // a refused or reset connection counts as a failure too
  }
}

async function ping(): Promise<{ status: number; tensors?: number; queue?: number }> {
  try {
    const res = await fetch(`${backend.url}/ping`);
    const { tensors, queue } = (await res.json()) as { tensors?: number; queue?: number };
    return { status: res.status, tensors, queue };
  } catch {
    return { status: 0 };
  }
}

async function servedVersion(): Promise<string> {
  const headers = await signRequest(SECRET, { method: 'GET', path: '/v1/model', body: new Uint8Array() });
  const res = await fetch(`${backend.url}/v1/model`, { headers });
  return ModelManifest.parse(await res.json()).version;
}

/** The backend's JSON log lines, in order. */
function events(): Record<string, unknown>[] {
  return backend.logs.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

async function waitForEvent(event: string, after: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const found = events()
      .slice(after)
      .find((e) => e.event === event);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no ${event} in the log:\n${backend.logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Repoints the symlink atomically (rename over it), as an operator's `ln -sfn` + `mv -T` would. */
async function repoint(target: string): Promise<void> {
  const tmp = `${link}.next`;
  await symlink(target, tmp);
  await rename(tmp, link);
}

/** The tensor count once nothing is in flight. */
async function idleTensors(): Promise<number> {
  for (;;) {
    const p = await ping();
    if (p.queue === 0 && p.tensors !== undefined) return p.tensors;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs `during` while 8 request loops and a /ping poller keep the backend busy; returns what they saw. With
 * batches of 2, requests are always queued on the model in service: a switch that freed it early would fail them.
 */
async function underLoad(during: () => Promise<void>) {
  let running = true;
  const loops = Array.from({ length: 8 }, async () => {
    const seen: Answer[] = [];
    while (running) seen.push(await invoke());
    return seen;
  });
  const pinger = (async () => {
    const statuses: number[] = [];
    while (running) {
      statuses.push((await ping()).status);
      await new Promise((r) => setTimeout(r, 10));
    }
    return statuses;
  })();
  try {
    await new Promise((r) => setTimeout(r, 300));
    await during();
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    running = false;
  }
  return { loops: await Promise.all(loops), pings: await pinger };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pp-switch-'));
  dirA = await trainTinyModel(join(work, 'a'), 5);
  dirB = await trainTinyModel(join(work, 'b'), 6);
  link = join(work, 'current');
  await symlink(dirA, link);
  backend = await startBackend(['--model', link, '--max-batch', '2', '--max-wait-ms', '20'], {
    PROTOPOOL_HMAC_SECRET: SECRET,
  });
  versionA = await servedVersion();
  versionB = ModelManifest.parse(JSON.parse(await readFile(join(dirB, 'manifest.json'), 'utf8'))).version;
});

afterAll(async () => {
  await backend?.stop();
});

describe('protopool serve: SIGHUP switches to the model the symlink now names', () => {
  it('switches under load with no failed request, /ping 200 throughout, and frees the old model', async () => {
    expect(versionA).not.toBe(versionB);
    for (let i = 0; i < 4; i++) expect((await invoke()).version).toBe(versionA);
    const before = await idleTensors();
    const mark = events().length;

    const { loops, pings } = await underLoad(async () => {
      await repoint(dirB);
      backend.child.kill('SIGHUP');
      await waitForEvent('model_switch', mark);
      await waitForEvent('model_retired', mark);
    });

    const answers = loops.flat();
    expect(answers.length).toBeGreaterThan(20);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(pings.length).toBeGreaterThan(10);
    expect(pings.filter((s) => s !== 200)).toEqual([]);
    // Each loop is sequential: its versions read A… then B…, never back.
    for (const seen of loops) {
      const versions = seen.map((a) => a.version);
      const firstB = versions.indexOf(versionB);
      expect(firstB).toBeGreaterThanOrEqual(0);
      expect(new Set(versions.slice(0, firstB))).toEqual(new Set(firstB ? [versionA] : []));
      expect(new Set(versions.slice(firstB))).toEqual(new Set([versionB]));
    }
    expect(answers.some((a) => a.version === versionA)).toBe(true);
    expect(await servedVersion()).toBe(versionB);

    const switched = events()
      .slice(mark)
      .filter((e) => e.event === 'model_switch');
    expect(switched).toHaveLength(1);
    expect(switched[0]).toMatchObject({ from: versionA, to: versionB, dir: dirB, ms: expect.any(Number) });
    expect(await waitForEvent('model_retired', mark)).toMatchObject({ version: versionA });
    // Same architecture, so the same tensor count: the old model's tensors are gone, not merely shadowed.
    expect(await idleTensors()).toBe(before);
  });

  it('keeps serving the current model when the new directory cannot be loaded, and logs why', async () => {
    const broken = join(work, 'broken');
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, 'manifest.json'), '{"version": "not a manifest"}');
    const before = await idleTensors();
    const mark = events().length;

    const { loops, pings } = await underLoad(async () => {
      await repoint(broken);
      backend.child.kill('SIGHUP');
      await waitForEvent('model_switch_failed', mark);
    });

    expect(await waitForEvent('model_switch_failed', mark)).toMatchObject({
      dir: broken,
      serving: versionB,
      error: expect.stringContaining(join(broken, 'manifest.json')),
    });
    const answers = loops.flat();
    expect(answers.filter((a) => a.status !== 200 || a.version !== versionB)).toEqual([]);
    expect(pings.filter((s) => s !== 200)).toEqual([]);
    expect(await servedVersion()).toBe(versionB);
    expect(await idleTensors()).toBe(before);
  });

  it('coalesces SIGHUPs: the last one wins, and a switch undone while loading is never served', async () => {
    const before = await idleTensors();
    const mark = events().length;
    await repoint(dirA);
    backend.child.kill('SIGHUP');
    // A loads (a few hundred ms) while the operator changes their mind.
    await waitForEvent('model_loading', mark);
    await repoint(dirB);
    backend.child.kill('SIGHUP');
    await waitForEvent('model_unchanged', mark);

    const after = events().slice(mark);
    expect(after.filter((e) => e.event === 'model_switch')).toEqual([]);
    expect(after.find((e) => e.event === 'model_switch_superseded')).toMatchObject({
      dir: dirA,
      version: versionA,
    });
    expect((await invoke()).version).toBe(versionB);
    expect(await servedVersion()).toBe(versionB);
    expect(await idleTensors()).toBe(before);
  });

  it('a SIGHUP with the model unchanged loads nothing', async () => {
    const mark = events().length;
    backend.child.kill('SIGHUP');
    expect(await waitForEvent('model_unchanged', mark)).toMatchObject({ version: versionB, dir: dirB });
    expect(backend.child.exitCode).toBeNull();
  });
});
