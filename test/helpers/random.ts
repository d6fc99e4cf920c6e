// Seeded test data: the same numbers on every run and runtime (the project's mulberry32 stream).
import { mulberry32 } from '../../gpu-backend/src/util/random';

export function seededArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
}
