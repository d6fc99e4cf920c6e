// Finding the state dict in what torch.save wrote: a bare dict, a training checkpoint, or DataParallel's.
//
//   {"conv.weight": t, …}                               → as is
//   {"state_dict": {…}, "epoch": 3, "optimizer": {…}}    → the dict under "state_dict"
//   {"model": {…}, …}                                   → the dict under "model"
//   {"module.conv.weight": t, …} (every key prefixed)   → "module." removed
// A wrapper key counts only if its value is a dict holding tensors; values beside the tensors (epoch
// numbers, arch strings, optimizer state) are ignored, since they are not weights.
import { show } from './layout';
import { isTensorRef, type TensorRef } from './torch-pickle';

export const WRAPPER_KEYS = ['state_dict', 'model'] as const;
const DATA_PARALLEL = 'module.';

/** The state dict's tensors in dict order, or a description of what the top object holds instead. */
export function findStateDict(top: unknown): { tensors: [string, TensorRef][] } | { found: string } {
  if (!(top instanceof Map)) return { found: `the top object is ${show(top)}, not a dict` };
  for (const wrapper of WRAPPER_KEYS) {
    const inner = top.get(wrapper);
    if (inner instanceof Map && tensorsOf(inner).length > 0) return checked(inner);
  }
  if (tensorsOf(top).length > 0) return checked(top);
  const keys = [...top.keys()];
  const listed = keys.slice(0, 12).map((k) => (typeof k === 'string' ? k : show(k)));
  if (keys.length > 12) listed.push(`… (${keys.length} keys)`);
  return { found: keys.length === 0 ? 'an empty dict' : `a dict with keys ${listed.join(', ')}` };
}

function tensorsOf(dict: Map<unknown, unknown>): [unknown, TensorRef][] {
  return [...dict].filter((e): e is [unknown, TensorRef] => isTensorRef(e[1]));
}

function checked(dict: Map<unknown, unknown>): { tensors: [string, TensorRef][] } | { found: string } {
  const tensors = tensorsOf(dict);
  const bad = tensors.find(([k]) => typeof k !== 'string');
  if (bad !== undefined) return { found: `a dict of tensors with the non-string key ${show(bad[0])}` };
  return { tensors: tensors as [string, TensorRef][] };
}

/** Removes DataParallel's "module." when every key has it (a partial prefix is a real module name). */
export function stripDataParallel<T>(entries: [string, T][]): [string, T][] {
  if (entries.length === 0 || !entries.every(([k]) => k.startsWith(DATA_PARALLEL))) return entries;
  return entries.map(([k, v]) => [k.slice(DATA_PARALLEL.length), v]);
}
