// The backend image's Dockerfile installs every workspace the lockfile names (docker cannot run here).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const dockerfile = readFileSync('gpu-backend/deploy/Dockerfile', 'utf8');
const dockerignore = readFileSync('.dockerignore', 'utf8');
const workspaces = (JSON.parse(readFileSync('package.json', 'utf8')) as { workspaces: string[] }).workspaces;

/** The stages that run `npm ci`, each with the files it copied before. */
function installStages(): { name: string; copied: string[] }[] {
  return dockerfile
    .split(/^FROM /m)
    .slice(1)
    .filter((stage) => /RUN npm ci/.test(stage))
    .map((stage) => ({
      name: stage.split('\n')[0]!,
      copied: [...stage.split(/RUN npm ci/)[0]!.matchAll(/^COPY (?!--from)(\S+)/gm)].map((m) => m[1]!),
    }));
}

describe('gpu-backend/deploy/Dockerfile', () => {
  it('has a GPU build and a CPU build (--target cpu), both running npm ci', () => {
    expect(installStages().map((s) => s.name)).toEqual(['cpu-base AS cpu-build', 'base AS build']);
  });

  it.each(workspaces)(
    'copies workspace %s into every stage that runs npm ci (the lockfile needs it)',
    (ws) => {
      for (const stage of installStages()) {
        expect(
          stage.copied.some((c) => c === ws || c === `${ws}/package.json`),
          stage.name,
        ).toBe(true);
      }
    },
  );

  it('lets the native kernels’ sources, but not a local build of them, into the build context', () => {
    for (const f of ['native/package.json', 'native/binding.gyp', 'native/build.mjs', 'native/src']) {
      expect(dockerignore).toContain(`!${f}\n`);
    }
    expect(dockerignore).not.toMatch(/!native\/build\n/);
  });
});
