// In-memory state dicts for import tests: torchvision key sets filled with the synthetic weights.
import { RESNET, type ResnetName } from '../../gpu-backend/src/model/backbones';
import { torchvisionSlots } from '../../gpu-backend/src/weights/resnet-layout';
import type { StateDict, TensorEntry } from '../../gpu-backend/src/weights/state-dict';
import { syntheticValues } from './synthetic-weights';
import { writeTorchZip } from './torch-zip';

export type Entries = [key: string, shape: number[]][];

/** Every key of torchvision's `resnetXX().state_dict()` with its shape (classifier of 1000 classes). */
export function torchvisionEntries(arch: ResnetName): Entries {
  const out: Entries = [];
  for (const s of torchvisionSlots(arch)) {
    out.push([s.key, s.shape]);
    if (s.key.endsWith('.running_var')) out.push([s.key.replace('running_var', 'num_batches_tracked'), []]);
  }
  const features = 512 * (RESNET[arch].bottleneck ? 4 : 1);
  out.push(['fc.weight', [1000, features]], ['fc.bias', [1000]]);
  return out;
}

/** A StateDict whose values are the synthetic ones of each key (or of `valueKey(key)`), read lazily. */
export function syntheticStateDict(
  entries: Entries,
  file = 'synthetic.pth',
  valueKey: (key: string) => string = (k) => k,
): StateDict {
  const map = new Map<string, TensorEntry>();
  for (const [key, shape] of entries) {
    map.set(key, {
      key,
      dtype: key.endsWith('num_batches_tracked') ? 'int64' : 'float32',
      shape,
      read: async () => syntheticValues(valueKey(key), shape),
    });
  }
  return { file, format: 'torch-zip', entries: map, close: async () => {} };
}

/** `torch.save(state_dict)` of `entries` filled with the synthetic values, as a user's .pth file. */
export function writeSyntheticCheckpoint(path: string, entries: Entries): Promise<void> {
  return writeTorchZip(
    path,
    entries.map(([key, shape]) => ({
      key,
      shape,
      values: syntheticValues(key, shape),
      ...(key.endsWith('num_batches_tracked') ? { dtype: 'int64' as const } : {}),
    })),
  );
}
