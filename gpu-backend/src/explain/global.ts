// The global explanation: every prototype's source, the classes and slots using it, the sharing graph.
import type { GlobalExplanation, ModelManifest } from '@protopool/shared';

export function globalExplanation(manifest: ModelManifest): GlobalExplanation {
  const { architecture: a } = manifest;
  const prototypes = manifest.prototypes
    .map((p) => ({
      id: p.id,
      source: p.source,
      usedBy: p.usedBy,
      classes: [...new Set(p.usedBy.map((u) => u.classIndex))].sort((x, y) => x - y),
    }))
    .sort((x, y) => x.id - y.id);
  const inUse = new Set(prototypes.filter((p) => p.usedBy.length > 0).map((p) => p.id));
  const sharing = prototypes
    .filter((p) => p.classes.length >= 2)
    .map((p) => ({ prototypeId: p.id, classes: p.classes }));
  const used = prototypes.filter((p) => inUse.has(p.id));
  return {
    modelVersion: manifest.version,
    classes: manifest.classes,
    prototypes,
    sharing,
    unused: Array.from({ length: a.prototypes }, (_, i) => i).filter((i) => !inUse.has(i)),
    compactness: {
      poolSize: a.prototypes,
      prototypesUsed: used.length,
      slots: manifest.classes.length * a.slotsPerClass,
      sharedPrototypes: sharing.length,
      meanClassesPerPrototype: used.length ? used.reduce((s, p) => s + p.classes.length, 0) / used.length : 0,
    },
  };
}
