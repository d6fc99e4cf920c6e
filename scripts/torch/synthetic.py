"""Seeded synthetic state-dict values, bit for bit the same as test/helpers/synthetic-weights.ts.

Each value is a pure function of (key, element index) in 32-bit integer arithmetic, scaled in float64 and
rounded once to float32, so the TypeScript tests rebuild the weights PyTorch's goldens were made with.
"""
import numpy as np

M32 = 0xFFFFFFFF


def fnv1a(key: str) -> int:
    h = 0x811C9DC5
    for byte in key.encode("utf-8"):
        h ^= byte
        h = (h * 0x01000193) & M32
    return h


def fmix32(x: np.ndarray) -> np.ndarray:
    h = x.astype(np.uint64)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(M32)
    h ^= h >> np.uint64(16)
    return h


def uniform(key: str, n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.uint64)
    x = (np.uint64(fnv1a(key)) + ((i * np.uint64(0x9E3779B1)) & np.uint64(M32))) & np.uint64(M32)
    return fmix32(x).astype(np.float64) / 4294967296.0


def values(key: str, shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform(key, n)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        v = np.zeros(n)
    elif leaf == "running_var":
        v = 0.5 + u
    elif leaf in ("running_mean", "bias"):
        v = (2 * u - 1) * 0.1
    elif len(shape) == 1:
        v = 0.2 + 0.6 * u
    else:
        fan_in = n / shape[0]
        a = np.sqrt((6 if len(shape) == 4 else 3) / fan_in)
        v = (2 * u - 1) * a
    return v.astype(np.float32).reshape(shape)


def input_batch(shape) -> np.ndarray:
    return ((2 * uniform("input", int(np.prod(shape))) - 1) * 2).astype(np.float32).reshape(shape)
