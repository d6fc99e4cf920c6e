// Reading PyTorch checkpoints: every format gives PyTorch's own keys, shapes and values (expected.json is
// written by scripts/torch/make-reader-fixtures.py from the tensors torch saved), wrappers and DataParallel
// prefixes are removed, and every malformed or hostile file ends in a CheckpointError naming the file.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointFile } from '../../gpu-backend/src/weights/checkpoint-file';
import { halfToFloat } from '../../gpu-backend/src/weights/decode';
import { readCheckpoint } from '../../gpu-backend/src/weights/read-checkpoint';
import { CheckpointError, type StateDict } from '../../gpu-backend/src/weights/state-dict';
import { openTorchLegacy } from '../../gpu-backend/src/weights/torch-legacy';
import { unpickle } from '../../gpu-backend/src/weights/torch-pickle';
import { findStateDict } from '../../gpu-backend/src/weights/unwrap';
import { fuzzParams, fuzzTimeout, mutatedBytes, within } from '../helpers/fuzz';

const DIR = fileURLToPath(new URL('../fixtures/checkpoints/', import.meta.url));
const at = (name: string) => join(DIR, name);

interface ExpectedTensor {
  key: string;
  dtype: string;
  shape: number[];
  /** PyTorch's `t.float().flatten().tolist()`. */
  values: number[];
}
interface Refusal {
  starts?: string;
  global?: string;
  key?: string;
  holds?: number;
  needs?: number;
  keys?: string[];
}
interface Expected {
  torch: string;
  tensors: ExpectedTensor[];
  /** Per malformed fixture: what its refusal must name. */
  malformed: Record<string, Refusal>;
}
const expected = JSON.parse(readFileSync(at('expected.json'), 'utf8')) as Expected;
const byKey = new Map(expected.tensors.map((t) => [t.key, t]));

/** A failure must come quickly: no reader may wait on bytes that are not there. */
const QUICK = { timeout: 10_000 };

async function refusal(path: string): Promise<CheckpointError> {
  const err = await within(5_000, path, readCheckpoint(path)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${path} should be refused`).toBeInstanceOf(CheckpointError);
  const e = err as CheckpointError;
  expect(e.message.startsWith(`${path}: `), e.message).toBe(true);
  return e;
}

async function expectTensors(sd: StateDict, tensors = expected.tensors): Promise<void> {
  expect([...sd.entries.keys()]).toEqual(tensors.map((t) => t.key));
  for (const t of tensors) {
    const entry = sd.entries.get(t.key)!;
    expect(entry.key).toBe(t.key);
    expect(entry.dtype, t.key).toBe(t.dtype);
    expect(entry.shape, t.key).toEqual(t.shape);
    // Exact: float32 sources bit for bit, every other dtype as PyTorch's .float() reports it (-0 included).
    expect(Array.from(await entry.read()), t.key).toEqual(t.values);
  }
}

describe('readCheckpoint: formats', () => {
  it.each([
    ['state-dict.pth', 'torch-zip', 'torch.save (zip, PyTorch ≥ 1.6)'],
    ['deflated.pth', 'torch-zip', 'the same zip with deflated entries'],
    ['zip64.pth', 'torch-zip', 'the same zip with ZIP64 records'],
    ['legacy.pth', 'torch-legacy', 'torch.save(_use_new_zipfile_serialization=False)'],
    ['state-dict.safetensors', 'safetensors', 'safetensors'],
  ])('%s (%s: %s) gives PyTorch keys, dtypes, shapes and values', async (name, format) => {
    const sd = await readCheckpoint(at(name));
    try {
      expect(sd.format).toBe(format);
      expect(sd.file).toBe(at(name));
      await expectTensors(sd);
    } finally {
      await sd.close();
    }
  });

  it.each([
    ['wrapped-state-dict.pth', '{"state_dict": sd, "epoch": 3, "arch": …}'],
    ['wrapped-model.pth', '{"model": sd}'],
    ['data-parallel.pth', 'every key prefixed with "module."'],
  ])('%s (%s) gives the bare keys', async (name) => {
    const sd = await readCheckpoint(at(name));
    try {
      await expectTensors(sd);
    } finally {
      await sd.close();
    }
  });

  it.each(['state-dict.pth', 'legacy.pth'])(
    '%s: strided tensors come out row-major (transposed, channels_last, an offset view of a shared storage)',
    async (name) => {
      const sd = await readCheckpoint(at(name));
      try {
        for (const key of ['transposed', 'channels_last', 'shared.view']) {
          const t = byKey.get(key)!;
          expect(Array.from(await sd.entries.get(key)!.read()), key).toEqual(t.values);
        }
        // shared.view = base[5:17].view(3, 4)[:, ::2] with base[i] = i / 2.
        expect(Array.from(await sd.entries.get('shared.view')!.read())).toEqual([
          2.5, 3.5, 4.5, 5.5, 6.5, 7.5,
        ]);
      } finally {
        await sd.close();
      }
    },
  );

  it('reads entries in any order, more than once, and refuses reads after close()', async () => {
    const sd = await readCheckpoint(at('state-dict.pth'));
    const keys = [...sd.entries.keys()].reverse();
    const first = await Promise.all(keys.map((k) => sd.entries.get(k)!.read()));
    const again = await Promise.all(keys.map((k) => sd.entries.get(k)!.read()));
    expect(again).toEqual(first);
    await sd.close();
    const err = await sd.entries
      .get('conv.weight')!
      .read()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).key).toBe('conv.weight');
    await sd.close(); // twice is harmless
  });

  it('decodes every float16 bit pattern class: zero, subnormal, normal, max, Inf, NaN', () => {
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });

  it('finds where each legacy pickle ends however small the first read of the file is', async () => {
    for (const firstRead of [1, 7, 100, 1000]) {
      const file = await CheckpointFile.open(at('legacy.pth'));
      try {
        const checkpoint = await openTorchLegacy(file, firstRead);
        const found = findStateDict(checkpoint.top);
        expect('tensors' in found && found.tensors.map(([k]) => k)).toEqual(
          expected.tensors.map((t) => t.key),
        );
      } finally {
        await file.close();
      }
    }
  });
});

describe('readCheckpoint: malformed files are refused, naming the file', () => {
  const bad = expected.malformed;

  it('a file that is not a checkpoint shows its first bytes', QUICK, async () => {
    const e = await refusal(at('wrong-magic.pth'));
    expect(e.detail).toMatch(
      /^not a PyTorch checkpoint \(\.pt\/\.pth zip or legacy\) or \.safetensors file: starts with /,
    );
    expect(e.detail).toContain(JSON.stringify(`${bad['wrong-magic.pth']!.starts}..`));
  });

  it.each(['truncated.pth', 'legacy-truncated.pth'])('a truncated file (%s)', QUICK, async (name) => {
    const e = await refusal(at(name));
    expect(e.detail).toMatch(/truncated/);
  });

  it.each(['evil-global.pth', 'whole-model.pth'])(
    '%s: a global outside the state-dict registry',
    QUICK,
    async (name) => {
      const e = await refusal(at(name));
      expect(e.detail).toBe(`refuses unknown global ${bad[name]!.global}: only plain state dicts are read`);
    },
  );

  it('a storage shorter than its tensor names the key and both sizes', QUICK, async () => {
    const { key, holds, needs } = bad['short-storage.pth']!;
    const e = await refusal(at('short-storage.pth'));
    expect(e.key).toBe(key);
    expect(e.detail).toBe(`storage holds ${holds} elements, the tensor needs ${needs}`);
  });

  it('a safetensors range shorter than its shape names the key and both sizes', QUICK, async () => {
    const { key, holds, needs } = bad['bad-offsets.safetensors']!;
    const e = await refusal(at('bad-offsets.safetensors'));
    expect(e.key).toBe(key);
    expect(e.detail).toBe(`storage holds ${holds} elements, the tensor needs ${needs}`);
  });

  it('a safetensors header that is not JSON', QUICK, async () => {
    const e = await refusal(at('bad-header.safetensors'));
    expect(e.detail).toMatch(/^safetensors header is not JSON/);
  });

  it('a checkpoint without tensors says what its top object holds', QUICK, async () => {
    const e = await refusal(at('no-tensors.pth'));
    expect(e.detail).toBe(
      `holds no tensors to read: a dict with keys ${bad['no-tensors.pth']!.keys!.join(', ')}`,
    );
  });

  it('a missing file, an empty file and a directory', QUICK, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
    try {
      await writeFile(join(dir, 'empty.pth'), new Uint8Array(0));
      expect((await refusal(join(dir, 'missing.pth'))).detail).toMatch(/^cannot open/);
      expect((await refusal(join(dir, 'empty.pth'))).detail).toBe('the file is empty');
      expect((await refusal(dir)).detail).toBe('not a regular file');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('every fixture the script wrote is covered here', () => {
    const tested = [
      'state-dict.pth',
      'deflated.pth',
      'zip64.pth',
      'legacy.pth',
      'state-dict.safetensors',
      'wrapped-state-dict.pth',
      'wrapped-model.pth',
      'data-parallel.pth',
      'expected.json',
      ...Object.keys(bad),
    ];
    expect(readdirSync(DIR).sort()).toEqual([...tested].sort());
  });
});

/** Pickle opcodes for hand-written hostile pickles (protocol 2). */
const op = {
  proto: [0x80, 2],
  global: (module: string, name: string) => [0x63, ...Buffer.from(`${module}\n${name}\n`)],
  inst: (module: string, name: string) => [0x69, ...Buffer.from(`${module}\n${name}\n`)],
  str: (s: string) => {
    const b = Buffer.from(s);
    return [0x58, b.length, b.length >> 8, 0, 0, ...b];
  },
  int: (n: number) => [0x4b, n],
  binbytes: (length: number) => [0x42, ...Buffer.from(new Int32Array([length]).buffer)],
  mark: [0x28],
  tuple: [0x74],
  tuple1: [0x85],
  emptyTuple: [0x29],
  emptyDict: [0x7d],
  setitem: [0x73],
  reduce: [0x52],
  newobj: [0x81],
  build: [0x62],
  stop: [0x2e],
};
const pickle = (...parts: number[][]) => new Uint8Array(parts.flat());
const parse = (bytes: Uint8Array) => unpickle(bytes, 0, { file: 'hostile.pth', what: 'data.pkl' }).value;

function refused(bytes: Uint8Array): string {
  try {
    parse(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(CheckpointError);
    return (err as CheckpointError).detail;
  }
  throw new Error('the pickle was not refused');
}

describe('the restricted unpickler: nothing in a pickle runs, and odd pickles are refused cleanly', () => {
  it("refuses os.system('echo pwned') at the global, before any call", () => {
    const evil = pickle(
      op.proto,
      op.global('os', 'system'),
      op.str('echo pwned'),
      op.tuple1,
      op.reduce,
      op.stop,
    );
    expect(refused(evil)).toBe('refuses unknown global os.system: only plain state dicts are read');
  });

  it('refuses a pickled class instance (INST __main__.Evil)', () => {
    expect(refused(pickle(op.proto, op.mark, op.inst('__main__', 'Evil'), op.stop))).toMatch(
      /^refuses unknown global __main__\.Evil/,
    );
  });

  it('registry names cannot be constructed, called out of place or altered', () => {
    // NEWOBJ on OrderedDict (only REDUCE builds one), a storage type called, BUILD setting a property.
    expect(
      refused(pickle(op.proto, op.global('collections', 'OrderedDict'), op.emptyTuple, op.newobj, op.stop)),
    ).toMatch(/not a pickle this reader can read/);
    expect(
      refused(pickle(op.proto, op.global('torch', 'FloatStorage'), op.emptyTuple, op.reduce, op.stop)),
    ).toMatch(/torch\.FloatStorage is called/);
    const setstate = pickle(
      op.proto,
      op.global('collections', 'OrderedDict'),
      op.emptyDict,
      op.str('__setstate__'),
      op.global('torch._utils', '_rebuild_parameter'),
      op.setitem,
      op.build,
      op.stop,
    );
    expect(refused(setstate)).toMatch(/not a pickle this reader can read/);
    // And the next parse still gets a plain OrderedDict.
    expect(
      parse(pickle(op.proto, op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce, op.stop)),
    ).toEqual(new Map());
  });

  it('a negative byte-string length is refused rather than looping backwards', () => {
    expect(refused(pickle(op.proto, op.binbytes(-6), op.stop))).toMatch(/impossible length -6/);
  });

  it('a truncated pickle and a pickle without STOP', () => {
    expect(refused(pickle(op.proto, op.binbytes(100), [1, 2, 3]))).toMatch(/truncated/);
    expect(refused(pickle(op.proto, op.emptyDict))).toMatch(/not a pickle this reader can read/);
  });

  it('a key named __proto__ stays a key, and a dict shaped like a tensor is not one', () => {
    const forged = parse(
      pickle(
        op.proto,
        op.emptyDict,
        op.str('__proto__'),
        op.emptyDict,
        op.setitem,
        op.str('w'),
        op.emptyDict,
        op.str('storage'),
        op.int(0),
        op.setitem,
        op.setitem,
        op.stop,
      ),
    );
    expect(forged).toBeInstanceOf(Map);
    expect([...(forged as Map<string, unknown>).keys()]).toEqual(['__proto__', 'w']);
    expect(findStateDict(forged)).toEqual({ found: 'a dict with keys __proto__, w' });
  });
});

describe('fuzz: mutated checkpoints parse or give a CheckpointError, never another error or a hang', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ckpt-fuzz-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const openFds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);

  it.each(['state-dict.pth', 'state-dict.safetensors', 'legacy.pth'])(
    '%s',
    async (name) => {
      const base = new Uint8Array(readFileSync(at(name)));
      const path = join(dir, name);
      const fdsBefore = openFds();
      const outcomes = { read: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(
          mutatedBytes(() => base),
          async (bytes) => {
            await writeFile(path, bytes);
            const attempt = async () => {
              const sd = await readCheckpoint(path);
              try {
                for (const entry of sd.entries.values()) await entry.read();
              } finally {
                await sd.close();
              }
            };
            try {
              await within(5_000, `${name} mutated`, attempt());
              outcomes.read++;
            } catch (err) {
              if (!(err instanceof CheckpointError)) throw err;
              expect(err.message.startsWith(`${path}: `)).toBe(true);
              outcomes.refused++;
            }
          },
        ),
        fuzzParams(),
      );
      expect(outcomes.read + outcomes.refused).toBeGreaterThan(0);
      // Every refusal released its file handle.
      expect(openFds()).toBeLessThanOrEqual(fdsBefore + 2);
    },
    fuzzTimeout(10),
  );
});
