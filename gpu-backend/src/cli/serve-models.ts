// `protopool serve --model [name=]dir …`: which models to serve under which names, checked before loading.
import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { ModelName } from '@protopool/shared';
import { exists } from '../io/files';
import { modelDir, UsageError } from './errors';

export interface ServedModelArg {
  name: ModelName;
  /** The directory as given (a symlink stays a symlink: it is resolved again at each reload). */
  given: string;
}

/** commander's collector for the repeatable --model. */
export function collectModel(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `name=dir` or `dir`; a name holds no `/`, so a path with `=` in a later segment stays a path. */
function splitModelArg(value: string): { name?: string; path: string } {
  const m = /^([^=/]+)=(.+)$/.exec(value);
  return m ? { name: m[1]!, path: m[2]! } : { path: value };
}

function checkName(name: string, source: string): ModelName {
  const parsed = ModelName.safeParse(name);
  if (!parsed.success)
    throw new UsageError(`${source}: "${name}" is not a model name (${parsed.error.issues[0]!.message})`);
  return parsed.data;
}

/**
 * The name an unnamed directory is served under: its own name in model-name form (`Fashion_MNIST` →
 * `fashion-mnist`, `pp-run-Xy7Q` → `pp-run-xy7q`), so `serve --model <any training output>` keeps working as it did
 * before names existed; `model` when nothing of the name is left. A name the operator writes is taken as is.
 */
export function nameOfDirectory(dir: string): string {
  const slug = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 48)
    .replace(/^-+|-+$/g, '');
  return slug || 'model';
}

/**
 * A directory holding no model but subdirectories that each hold one (a SageMaker model.tar.gz packing several
 * models under /opt/ml/model): those subdirectories, sorted, or null when it is not such a directory.
 */
async function modelSubdirectories(path: string): Promise<string[] | null> {
  let entries: string[];
  try {
    entries = (await readdir(path, { withFileTypes: true }))
      .filter((e) => e.isDirectory() || e.isSymbolicLink())
      .map((e) => e.name)
      .sort();
  } catch {
    return null;
  }
  const found: string[] = [];
  for (const e of entries) if (await exists(join(path, e, 'manifest.json'))) found.push(e);
  return found.length ? found : null;
}

/**
 * The models `--model` values name, in order. A name defaults to the directory's basename; an unnamed
 * directory of model directories serves each under its own name.
 */
export async function servedModels(values: readonly string[]): Promise<ServedModelArg[]> {
  const out: ServedModelArg[] = [];
  for (const value of values) {
    const { name, path } = splitModelArg(value);
    const source = `--model ${value}`;
    if (name === undefined && !(await exists(join(path, 'manifest.json')))) {
      const subs = await modelSubdirectories(path);
      if (subs && !(await exists(join(path, 'model', 'manifest.json')))) {
        for (const sub of subs) {
          const given = join(path, sub);
          out.push({ name: checkName(nameOfDirectory(given), `${source} (subdirectory ${sub})`), given });
        }
        continue;
      }
    }
    // Checked now, so a wrong path is a usage error before anything loads.
    await modelDir(path);
    out.push({ name: checkName(name ?? nameOfDirectory(path), source), given: path });
  }
  const names = out.map((m) => m.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined)
    throw new UsageError(
      `--model: two models are named "${twice}" (${out
        .filter((m) => m.name === twice)
        .map((m) => m.given)
        .join(', ')}); name one with --model <name>=<dir>`,
    );
  return out;
}

/** --default-model, or the first model; a name not served is a usage error listing the served ones. */
export function defaultModelOf(models: readonly ServedModelArg[], asked: string | undefined): ModelName {
  if (asked === undefined) return models[0]!.name;
  const name = checkName(asked, `--default-model ${asked}`);
  if (!models.some((m) => m.name === name))
    throw new UsageError(
      `--default-model ${asked}: no model of that name is served (${models.map((m) => m.name).join(', ')})`,
    );
  return name;
}
