// Memory-bound kernels: ReLU's gradient, and the slices and constant pads of a ResNet's explicit padding.
#include "common.h"

namespace protopool {

// reluGrad(dy, y, dx): dx = dy where relu's output y > 0, else 0 (tfjs-core's rule, on the output).
Napi::Value ReluGrad(const Napi::CallbackInfo& info) {
  const int64_t total = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength());
  const float* dy = floats(info[0], total, "dy");
  const float* y = floats(info[1], total, "y");
  float* dx = floats(info[2], total, "dx");
  // A multiply, not a select: dy·0 keeps the sign of zero exactly as tfjs-core's dy·step(x) does. The step
  // is a comparison's 0/1 converted, which vectorises; a `?:` compiled to a branch, mispredicted on half the
  // elements of a ReLU's output (8× slower on a 50×32×32×64 map).
#pragma omp parallel for simd schedule(static) if (total > 65536)
  for (int64_t i = 0; i < total; i++) dx[i] = dy[i] * static_cast<float>(y[i] > 0.f);
  return info.Env().Undefined();
}

// adam(w, g, m, v, wOut, mOut, vOut, constants: Float32Array [β₁, 1−β₁, β₂, 1−β₂, 1−β₁ᵗ, 1−β₂ᵗ, ε, −lr, wd])
//
// One Adam step in one pass, with L2 weight decay added to the gradient (torch.optim.Adam's). The
// operations and their order are tfjs-core's AdamOptimizer (see train/optimizer.ts), each rounded to
// float32 as its wasm kernels round them, so the result is the same to the bit: x86-64's baseline has no
// fused multiply-add for the compiler to contract into.
Napi::Value Adam(const Napi::CallbackInfo& info) {
  const int64_t n = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength());
  const float* w = floats(info[0], n, "w");
  const float* g = floats(info[1], n, "g");
  const float* m = floats(info[2], n, "m");
  const float* v = floats(info[3], n, "v");
  float* wOut = floats(info[4], n, "wOut");
  float* mOut = floats(info[5], n, "mOut");
  float* vOut = floats(info[6], n, "vOut");
  const float* k = floats(info[7], 9, "constants");
  const float beta1 = k[0], oneMinusBeta1 = k[1], beta2 = k[2], oneMinusBeta2 = k[3], oneMinusAcc1 = k[4],
              oneMinusAcc2 = k[5], eps = k[6], negLr = k[7], decay = k[8];
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    const float grad = decay > 0.f ? g[i] + w[i] * decay : g[i];
    const float m1 = m[i] * beta1 + grad * oneMinusBeta1;
    const float v1 = v[i] * beta2 + (grad * grad) * oneMinusBeta2;
    const float mHat = m1 / oneMinusAcc1;
    const float vHat = v1 / oneMinusAcc2;
    mOut[i] = m1;
    vOut[i] = v1;
    wOut[i] = (mHat / (std::sqrt(vHat) + eps)) * negLr + w[i];
  }
  return info.Env().Undefined();
}

namespace {

// Shapes padded to rank 4 on the left, for the two copies below.
// Shapes pad with 1, offsets (begin, before) with 0.
std::array<int64_t, 4> dims4(const Napi::Value& value, int64_t fill = 1) {
  auto arr = value.As<Napi::Int32Array>();
  if (arr.ElementLength() < 1 || arr.ElementLength() > 4) throw Napi::RangeError::New(value.Env(), "rank 1 to 4 only");
  std::array<int64_t, 4> d{fill, fill, fill, fill};
  const size_t off = 4 - arr.ElementLength();
  for (size_t i = 0; i < arr.ElementLength(); i++) d[off + i] = arr.Data()[i];
  return d;
}

}  // namespace

// slice(x, xShape, begin, size, out): 4-byte elements (float32 or int32), rank ≤ 4, innermost runs copied.
Napi::Value Slice(const Napi::CallbackInfo& info) {
  auto xs = dims4(info[1]);
  auto begin = dims4(info[2], 0);
  auto size = dims4(info[3]);
  auto xa = info[0].As<Napi::TypedArray>();
  auto oa = info[4].As<Napi::TypedArray>();
  if (xa.ByteLength() != static_cast<size_t>(xs[0] * xs[1] * xs[2] * xs[3] * 4) ||
      oa.ByteLength() != static_cast<size_t>(size[0] * size[1] * size[2] * size[3] * 4)) {
    throw Napi::RangeError::New(info.Env(), "slice buffers do not match their shapes");
  }
  for (int i = 0; i < 4; i++) {
    if (begin[i] < 0 || begin[i] + size[i] > xs[i]) throw Napi::RangeError::New(info.Env(), "slice out of bounds");
  }
  const auto* x = static_cast<const uint32_t*>(xa.ArrayBuffer().Data()) + xa.ByteOffset() / 4;
  auto* out = static_cast<uint32_t*>(oa.ArrayBuffer().Data()) + oa.ByteOffset() / 4;
  const int64_t rows = size[0] * size[1] * size[2];
#pragma omp parallel for schedule(static) if (rows > 4096)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t i2 = r % size[2], i1 = (r / size[2]) % size[1], i0 = r / (size[2] * size[1]);
    const int64_t src = (((i0 + begin[0]) * xs[1] + i1 + begin[1]) * xs[2] + i2 + begin[2]) * xs[3] + begin[3];
    std::memcpy(out + r * size[3], x + src, size[3] * 4);
  }
  return info.Env().Undefined();
}

// pad(x, xShape, before, outShape, value, out): float32, rank ≤ 4, constant padding.
Napi::Value Pad(const Napi::CallbackInfo& info) {
  auto xs = dims4(info[1]);
  auto before = dims4(info[2], 0);
  auto os = dims4(info[3]);
  const float value = info[4].As<Napi::Number>().FloatValue();
  const float* x = floats(info[0], xs[0] * xs[1] * xs[2] * xs[3], "x");
  float* out = floats(info[5], os[0] * os[1] * os[2] * os[3], "out");
  for (int i = 0; i < 4; i++) {
    if (before[i] < 0 || before[i] + xs[i] > os[i]) throw Napi::RangeError::New(info.Env(), "padding does not fit");
  }
  const int64_t rows = os[0] * os[1] * os[2];
#pragma omp parallel for schedule(static) if (rows > 4096)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o2 = r % os[2], o1 = (r / os[2]) % os[1], o0 = r / (os[2] * os[1]);
    float* row = out + r * os[3];
    const int64_t i0 = o0 - before[0], i1 = o1 - before[1], i2 = o2 - before[2];
    if (i0 < 0 || i0 >= xs[0] || i1 < 0 || i1 >= xs[1] || i2 < 0 || i2 >= xs[2]) {
      std::fill(row, row + os[3], value);
      continue;
    }
    std::fill(row, row + before[3], value);
    std::memcpy(row + before[3], x + ((i0 * xs[1] + i1) * xs[2] + i2) * xs[3], xs[3] * 4);
    std::fill(row + before[3] + xs[3], row + os[3], value);
  }
  return info.Env().Undefined();
}

}  // namespace protopool
