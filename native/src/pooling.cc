// The max-pool gradient TF.js's rule gives (first maximum of each window), in C++ over NHWC buffers.
#include "common.h"

namespace protopool {

// maxPoolGrad(dy, x, dx, geometry: Int32Array [n, h, w, c, kh, kw, oh, ow, sh, sw, top, left])
//
// Each output cell's gradient goes to the first position of its window, in row-major order, holding the
// maximum: TF.js's cpu rule, which matters after a ReLU where ties (zeros) are common. Padding never wins.
// Not oneDNN's pooling backward: that needs the forward's workspace, which TF.js does not keep.
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto geo = info[3].As<Napi::Int32Array>();
  if (geo.ElementLength() != 12) throw Napi::Error::New(env, "maxPoolGrad geometry must have 12 fields");
  const int32_t* v = geo.Data();
  const int64_t n = v[0], h = v[1], w = v[2], c = v[3], kh = v[4], kw = v[5], oh = v[6], ow = v[7], sh = v[8],
                sw = v[9], top = v[10], left = v[11];
  const float* dy = floats(info[0], n * oh * ow * c, "dy");
  const float* x = floats(info[1], n * h * w * c, "x");
  float* dx = floats(info[2], n * h * w * c, "dx");
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; b++) {
    const float* xb = x + b * h * w * c;
    float* dxb = dx + b * h * w * c;
    std::fill(dxb, dxb + h * w * c, 0.f);
    // Per channel: the best value so far and where it sits. The first tap in bounds seeds them, later
    // taps replace them only when strictly greater: branch-free selects the compiler vectorises (8× faster
    // than branches on a ReLU's output, where which tap wins is as good as random).
    std::vector<float> best(c);
    std::vector<int32_t> at(c);
    for (int64_t oy = 0; oy < oh; oy++) {
      for (int64_t ox = 0; ox < ow; ox++) {
        bool seeded = false;
        for (int64_t ky = 0; ky < kh; ky++) {
          const int64_t iy = oy * sh - top + ky;
          if (iy < 0 || iy >= h) continue;
          for (int64_t kx = 0; kx < kw; kx++) {
            const int64_t ix = ox * sw - left + kx;
            if (ix < 0 || ix >= w) continue;
            const int32_t base = static_cast<int32_t>((iy * w + ix) * c);
            const float* __restrict__ tap = xb + base;
            float* __restrict__ bp = best.data();
            int32_t* __restrict__ ap = at.data();
            if (!seeded) {
              for (int64_t ch = 0; ch < c; ch++) {
                bp[ch] = tap[ch];
                ap[ch] = base + static_cast<int32_t>(ch);
              }
              seeded = true;
              continue;
            }
            // The select on `at` as a mask: GCC keeps a `?:` on it as a branch, which does not vectorise.
            for (int32_t ch = 0; ch < static_cast<int32_t>(c); ch++) {
              const float t = tap[ch], b = bp[ch];
              const int32_t greater = -static_cast<int32_t>(t > b);
              bp[ch] = t > b ? t : b;
              ap[ch] = (ap[ch] & ~greater) | ((base + ch) & greater);
            }
          }
        }
        if (!seeded) continue;
        const float* g = dy + ((b * oh + oy) * ow + ox) * c;
        for (int64_t ch = 0; ch < c; ch++) dxb[at[ch]] += g[ch];
      }
    }
  }
  return env.Undefined();
}

}  // namespace protopool
