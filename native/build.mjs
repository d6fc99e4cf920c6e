// Builds the oneDNN addon at install time, and never fails the install: without a compiler or
// libdnnl-dev the engine runs on its wasm kernels, and says why from the note this leaves behind.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const note = join(here, 'build', 'unavailable.txt');

function giveUp(reason) {
  // An addon left from an earlier build (another machine's, a copied tree) must not load instead.
  rmSync(join(here, 'build', 'Release'), { recursive: true, force: true });
  mkdirSync(dirname(note), { recursive: true });
  writeFileSync(note, `${reason}\n`);
  console.warn(
    `@protopool/native-kernels: not built (${reason}); training and serving use the wasm kernels.`,
  );
  process.exit(0);
}

if (process.env.PROTOPOOL_NATIVE === '0') giveUp('PROTOPOOL_NATIVE=0 at install');
const header = '/usr/include/oneapi/dnnl/dnnl_version.h';
if (!existsSync(header)) {
  giveUp(
    'oneDNN headers not found: install them with `apt-get install libdnnl-dev`, then `npm rebuild @protopool/native-kernels`',
  );
}
// The kernels use oneDNN 2's operation descriptors, which oneDNN 3 removed.
const major = /#define DNNL_VERSION_MAJOR (\d+)/.exec(readFileSync(header, 'utf8'))?.[1];
if (major !== '2') {
  giveUp(
    `oneDNN ${major ?? '?'}.x found; the native kernels are written for oneDNN 2.x (Debian 12's libdnnl-dev)`,
  );
}
rmSync(note, { force: true });
// npm names its bundled node-gyp in npm_config_node_gyp for install scripts; by hand, use npm's own copy.
const gyp =
  process.env.npm_config_node_gyp ??
  join(
    dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
// Build against the running Node's own headers when they are installed beside it (no download).
const prefix = join(dirname(process.execPath), '..');
const nodedir =
  process.env.npm_config_nodedir ??
  (existsSync(join(prefix, 'include', 'node', 'node.h')) ? prefix : undefined);
const run = spawnSync(process.execPath, [gyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], {
  cwd: here,
  stdio: ['ignore', 'inherit', 'pipe'],
  encoding: 'utf8',
});
if (run.error || run.status !== 0) {
  const detail =
    run.error?.message ??
    (run.stderr ?? '').split('\n').find((l) => /error/i.test(l)) ??
    `exit ${run.status}`;
  process.stderr.write(run.stderr ?? '');
  giveUp(`node-gyp rebuild failed: ${detail.trim().slice(0, 200)}`);
}
