// Seeded synthetic weights for a PyTorch state dict, reproduced bit for bit by scripts/torch/synthetic.py.
//
// Parity tests need the same weights on both sides without committing a 100 MB checkpoint: each value is
// a pure function of (key, element index) in 32-bit integer arithmetic that Python and JavaScript compute
// identically, scaled in float64 and rounded once to float32.
//   h      = FNV-1a-32(UTF-8 key)
//   u(i)   = fmix32((h + i · 0x9E3779B1) mod 2³²) / 2³²            (MurmurHash3's finaliser)
//   value  = by kind, from the key's last component and the shape (see `syntheticValues`)

/** FNV-1a over the key's UTF-8 bytes. */
function fnv1a(key: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** n uniform values in [0, 1) for `key`. */
export function syntheticUniform(key: string, n: number): Float64Array {
  const h = fnv1a(key);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = fmix32((h + Math.imul(i, 0x9e3779b1)) >>> 0) / 4294967296;
  return out;
}

/**
 * The values of one state-dict entry, float32, row-major in PyTorch's shape. Scales keep a random ResNet-50
 * in eval mode well inside float32 (He-scaled convolutions; batch-norm gains below 1 so residual branches
 * do not compound), which makes a relative comparison of the final maps meaningful.
 */
export function syntheticValues(key: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = syntheticUniform(key, n);
  const leaf = key.slice(key.lastIndexOf('.') + 1);
  const out = new Float32Array(n);
  const fill = (f: (u: number) => number) => {
    for (let i = 0; i < n; i++) out[i] = f(u[i]!);
  };
  if (leaf === 'num_batches_tracked') return out;
  if (leaf === 'running_var') fill((x) => 0.5 + x);
  else if (leaf === 'running_mean' || leaf === 'bias') fill((x) => (2 * x - 1) * 0.1);
  else if (shape.length === 1)
    fill((x) => 0.2 + 0.6 * x); // a batch-norm gain
  else {
    const fanIn = n / shape[0]!;
    const a = Math.sqrt((shape.length === 4 ? 6 : 3) / fanIn);
    fill((x) => (2 * x - 1) * a);
  }
  return out;
}

/** A synthetic NCHW input batch in [−2, 2), as scripts/torch/synthetic.py makes it. */
export function syntheticInput(shape: readonly [number, number, number, number]): Float32Array {
  const u = syntheticUniform(
    'input',
    shape.reduce((a, b) => a * b, 1),
  );
  return Float32Array.from(u, (x) => (2 * x - 1) * 2);
}
