// oneDNN convolutions and matMuls over TF.js's own float32 buffers (NHWC activations, HWIO filters).
//
// Every entry point is synchronous and runs on the JS thread; oneDNN parallelises inside with OpenMP.
// Activations are handed to oneDNN in place (nhwc is a layout its AVX2 kernels take directly), so a
// call copies nothing but filters, which are small: they are reordered into the blocked layout the
// chosen implementation wants, and filter gradients back into HWIO. Primitives (and the buffers for
// those reorders) are cached per geometry, since a training run repeats a handful of shapes forever.
#include <napi.h>
#include <omp.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dnnl.hpp"

namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(cpu());
  return s;
}

// Geometry of a 2-D convolution in TF.js terms; the order is the Int32Array the JS side passes.
struct Conv {
  int64_t n, h, w, c, kh, kw, co, oh, ow, sh, sw, pt, pl, pb, pr, dh, dw;
  static constexpr size_t kFields = 17;

  memory::desc src(tag t = tag::nhwc) const { return {{n, c, h, w}, dt::f32, t}; }
  memory::desc dst(tag t = tag::nhwc) const { return {{n, co, oh, ow}, dt::f32, t}; }
  memory::desc weights(tag t) const { return {{co, c, kh, kw}, dt::f32, t}; }
  memory::desc bias() const { return {{co}, dt::f32, tag::x}; }
  memory::dims strides() const { return {sh, sw}; }
  // oneDNN counts dilation from 0 (0 = dense), TF.js from 1.
  memory::dims dilation() const { return {dh - 1, dw - 1}; }
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }
  int64_t srcSize() const { return n * h * w * c; }
  int64_t dstSize() const { return n * oh * ow * co; }
  int64_t weightsSize() const { return kh * kw * c * co; }
};

std::string keyOf(const char* kind, const int32_t* v, size_t count, int extra) {
  std::string key(kind);
  for (size_t i = 0; i < count; i++) key += "," + std::to_string(v[i]);
  return key + "/" + std::to_string(extra);
}

Conv readConv(const Napi::Value& value) {
  auto arr = value.As<Napi::Int32Array>();
  if (arr.ElementLength() != Conv::kFields) throw Napi::Error::New(value.Env(), "conv geometry must have 17 fields");
  const int32_t* g = arr.Data();
  return Conv{g[0], g[1], g[2],  g[3],  g[4],  g[5],  g[6],  g[7], g[8],
              g[9], g[10], g[11], g[12], g[13], g[14], g[15], g[16]};
}

float* floats(const Napi::Value& value, int64_t expected, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(value.Env(), std::string(name) + " must be a Float32Array");
  }
  auto arr = value.As<Napi::Float32Array>();
  if (static_cast<int64_t>(arr.ElementLength()) != expected) {
    throw Napi::RangeError::New(value.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) +
                                                 " elements, expected " + std::to_string(expected));
  }
  return arr.Data();
}

// Buffers shared by every primitive: calls run one at a time, so one filter copy and one scratchpad, each
// as large as the largest any primitive asked for, serve them all (one per primitive cost ~100 MB for a
// ResNet-18's three convolution directions).
class SharedBuffer {
 public:
  void* get(size_t bytes) {
    if (bytes > size_) {
      data_.reset(static_cast<char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
      if (!data_) throw std::bad_alloc();
      size_ = bytes;
    }
    return data_.get();
  }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
};

SharedBuffer filterCopy, scratchpad;

// The scratchpad argument for a primitive made with a user-managed scratchpad.
memory scratchpadFor(const memory::desc& d) { return memory(d, cpu(), scratchpad.get(d.get_size())); }

dnnl::primitive_attr userScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A reorder between a caller's plain buffer and a primitive's preferred layout, with the buffer for the
// reordered copy; a no-op when the primitive takes the plain layout.
struct Relayout {
  memory::desc plain, wanted;
  std::unique_ptr<dnnl::reorder> step;

  Relayout(const memory::desc& plainDesc, const memory::desc& wantedDesc, bool toWanted)
      : plain(plainDesc), wanted(wantedDesc) {
    if (plain == wanted) return;
    step = toWanted ? std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(cpu(), plain, cpu(), wanted))
                    : std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(cpu(), wanted, cpu(), plain));
  }

  // The memory to give the primitive for a buffer in the plain layout (reordering it in first).
  memory in(float* data) {
    memory user(plain, cpu(), data);
    if (!step) return user;
    memory copy = shared();
    step->execute(stream(), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, copy}});
    return copy;
  }
  // The memory a primitive writes to; `out(data)` then moves it into the plain buffer.
  memory target(float* data) { return step ? shared() : memory(plain, cpu(), data); }
  void out(float* data) {
    if (!step) return;
    memory user(plain, cpu(), data);
    step->execute(stream(), {{DNNL_ARG_FROM, shared()}, {DNNL_ARG_TO, user}});
  }
  memory shared() const { return memory(wanted, cpu(), filterCopy.get(wanted.get_size())); }
};

dnnl::convolution_forward::primitive_desc forwardDesc(const Conv& g, bool bias, bool relu) {
  auto wanted = g.weights(tag::any);
  auto d = bias ? dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, g.src(),
                                                  wanted, g.bias(), g.dst(), g.strides(), g.dilation(), g.padL(),
                                                  g.padR())
                : dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, g.src(),
                                                  wanted, g.dst(), g.strides(), g.dilation(), g.padL(), g.padR());
  dnnl::primitive_attr attr = userScratchpad();
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  return {d, attr, cpu()};
}

struct Forward {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  Relayout weights;
  Forward(const Conv& g, bool bias, bool relu)
      : pd(forwardDesc(g, bias, relu)), prim(pd), weights(g.weights(tag::hwio), pd.weights_desc(), true) {}
};

struct BackwardData {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  Relayout weights;
  static dnnl::convolution_backward_data::primitive_desc make(const Conv& g) {
    dnnl::convolution_backward_data::desc d(algorithm::convolution_direct, g.src(), g.weights(tag::any), g.dst(),
                                            g.strides(), g.dilation(), g.padL(), g.padR());
    return {d, userScratchpad(), cpu(), forwardDesc(g, false, false)};
  }
  explicit BackwardData(const Conv& g) : pd(make(g)), prim(pd), weights(g.weights(tag::hwio), pd.weights_desc(), true) {}
};

struct BackwardWeights {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  Relayout weights;
  static dnnl::convolution_backward_weights::primitive_desc make(const Conv& g) {
    dnnl::convolution_backward_weights::desc d(algorithm::convolution_direct, g.src(), g.weights(tag::any), g.dst(),
                                               g.strides(), g.dilation(), g.padL(), g.padR());
    return {d, userScratchpad(), cpu(), forwardDesc(g, false, false)};
  }
  explicit BackwardWeights(const Conv& g)
      : pd(make(g)), prim(pd), weights(g.weights(tag::hwio), pd.diff_weights_desc(), false) {}
};

template <typename T>
T& cached(std::unordered_map<std::string, std::unique_ptr<T>>& cache, const std::string& key,
          const std::function<std::unique_ptr<T>()>& make) {
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  // A long-lived server may see many input sizes; past this many, start afresh rather than grow.
  if (cache.size() >= 512) cache.clear();
  return *cache.emplace(key, make()).first->second;
}

std::unordered_map<std::string, std::unique_ptr<Forward>> forwards;
std::unordered_map<std::string, std::unique_ptr<BackwardData>> backwardDatas;
std::unordered_map<std::string, std::unique_ptr<BackwardWeights>> backwardWeights;

template <typename F>
Napi::Value guarded(const Napi::Env& env, F&& body) {
  try {
    body();
  } catch (const dnnl::error& e) {
    throw Napi::Error::New(env, std::string("oneDNN: ") + e.what() + " (status " + std::to_string(e.status) + ")");
  }
  return env.Undefined();
}

// conv2d(x, filter, bias | null, y, geometry: Int32Array(17), relu: boolean)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Conv g = readConv(info[4]);
  bool hasBias = !info[2].IsNull() && !info[2].IsUndefined();
  bool relu = info[5].ToBoolean();
  float* x = floats(info[0], g.srcSize(), "x");
  float* w = floats(info[1], g.weightsSize(), "filter");
  float* b = hasBias ? floats(info[2], g.co, "bias") : nullptr;
  float* y = floats(info[3], g.dstSize(), "y");
  return guarded(env, [&] {
    auto& f = cached<Forward>(forwards, keyOf("f", info[4].As<Napi::Int32Array>().Data(), Conv::kFields,
                                              (hasBias ? 1 : 0) | (relu ? 2 : 0)),
                              [&] { return std::make_unique<Forward>(g, hasBias, relu); });
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(g.src(), cpu(), x)},
                                         {DNNL_ARG_WEIGHTS, f.weights.in(w)},
                                         {DNNL_ARG_DST, memory(g.dst(), cpu(), y)}};
    if (hasBias) args.emplace(DNNL_ARG_BIAS, memory(g.bias(), cpu(), b));
    args.emplace(DNNL_ARG_SCRATCHPAD, scratchpadFor(f.pd.scratchpad_desc()));
    f.prim.execute(stream(), args);
    stream().wait();
  });
}

// conv2dBackpropInput(dy, filter, dx, geometry)
Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Conv g = readConv(info[3]);
  float* dy = floats(info[0], g.dstSize(), "dy");
  float* w = floats(info[1], g.weightsSize(), "filter");
  float* dx = floats(info[2], g.srcSize(), "dx");
  return guarded(env, [&] {
    auto& k = cached<BackwardData>(backwardDatas, keyOf("d", info[3].As<Napi::Int32Array>().Data(), Conv::kFields, 0),
                                   [&] { return std::make_unique<BackwardData>(g); });
    k.prim.execute(stream(), {{DNNL_ARG_SCRATCHPAD, scratchpadFor(k.pd.scratchpad_desc())},
                              {DNNL_ARG_DIFF_DST, memory(g.dst(), cpu(), dy)},
                              {DNNL_ARG_WEIGHTS, k.weights.in(w)},
                              {DNNL_ARG_DIFF_SRC, memory(g.src(), cpu(), dx)}});
    stream().wait();
  });
}

// conv2dBackpropFilter(x, dy, dw, geometry)
Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Conv g = readConv(info[3]);
  float* x = floats(info[0], g.srcSize(), "x");
  float* dy = floats(info[1], g.dstSize(), "dy");
  float* dw = floats(info[2], g.weightsSize(), "dw");
  return guarded(env, [&] {
    auto& k = cached<BackwardWeights>(backwardWeights,
                                      keyOf("w", info[3].As<Napi::Int32Array>().Data(), Conv::kFields, 0),
                                      [&] { return std::make_unique<BackwardWeights>(g); });
    k.prim.execute(stream(), {{DNNL_ARG_SCRATCHPAD, scratchpadFor(k.pd.scratchpad_desc())},
                              {DNNL_ARG_SRC, memory(g.src(), cpu(), x)},
                              {DNNL_ARG_DIFF_DST, memory(g.dst(), cpu(), dy)},
                              {DNNL_ARG_DIFF_WEIGHTS, k.weights.target(dw)}});
    k.weights.out(dw);
    stream().wait();
  });
}

// Geometry of a batched matMul C[b] = op(A[b]) · op(B[b]) (+ bias, relu); A or B may have batch 1
// (broadcast). Int32Array: batchA, batchB, m, k, n, transposeA, transposeB.
struct MatMul {
  int64_t batchA, batchB, m, k, n, ta, tb;
  int64_t batch() const { return batchA > batchB ? batchA : batchB; }
  memory::desc a() const {
    return {{batchA, m, k}, dt::f32, ta ? memory::dims{m * k, 1, m} : memory::dims{m * k, k, 1}};
  }
  memory::desc b() const {
    return {{batchB, k, n}, dt::f32, tb ? memory::dims{k * n, 1, k} : memory::dims{k * n, n, 1}};
  }
  memory::desc c() const { return {{batch(), m, n}, dt::f32, tag::abc}; }
  memory::desc bias() const { return {{1, 1, n}, dt::f32, tag::abc}; }
};

struct MatMulPrim {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  static dnnl::matmul::primitive_desc make(const MatMul& g, bool bias, bool relu) {
    auto d = bias ? dnnl::matmul::desc(g.a(), g.b(), g.bias(), g.c()) : dnnl::matmul::desc(g.a(), g.b(), g.c());
    dnnl::primitive_attr attr = userScratchpad();
    if (relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(ops);
    }
    return {d, attr, cpu()};
  }
  MatMulPrim(const MatMul& g, bool bias, bool relu) : pd(make(g, bias, relu)), prim(pd) {}
};

std::unordered_map<std::string, std::unique_ptr<MatMulPrim>> matmuls;

// matMul(a, b, bias | null, c, geometry: Int32Array(7), relu: boolean)
Napi::Value MatMulEntry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto geo = info[4].As<Napi::Int32Array>();
  if (geo.ElementLength() != 7) throw Napi::Error::New(env, "matMul geometry must have 7 fields");
  const int32_t* v = geo.Data();
  MatMul g{v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
  bool hasBias = !info[2].IsNull() && !info[2].IsUndefined();
  bool relu = info[5].ToBoolean();
  float* a = floats(info[0], g.batchA * g.m * g.k, "a");
  float* b = floats(info[1], g.batchB * g.k * g.n, "b");
  float* bias = hasBias ? floats(info[2], g.n, "bias") : nullptr;
  float* c = floats(info[3], g.batch() * g.m * g.n, "c");
  return guarded(env, [&] {
    auto& k = cached<MatMulPrim>(matmuls, keyOf("m", v, 7, (hasBias ? 1 : 0) | (relu ? 2 : 0)),
                                 [&] { return std::make_unique<MatMulPrim>(g, hasBias, relu); });
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(g.a(), cpu(), a)},
                                         {DNNL_ARG_WEIGHTS, memory(g.b(), cpu(), b)},
                                         {DNNL_ARG_DST, memory(g.c(), cpu(), c)}};
    if (hasBias) args.emplace(DNNL_ARG_BIAS, memory(g.bias(), cpu(), bias));
    args.emplace(DNNL_ARG_SCRATCHPAD, scratchpadFor(k.pd.scratchpad_desc()));
    k.prim.execute(stream(), args);
    stream().wait();
  });
}

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
    // taps replace them only when strictly greater: branch-free selects the compiler vectorises.
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
            const float* tap = xb + base;
            float* bp = best.data();
            int32_t* ap = at.data();
            if (!seeded) {
              for (int64_t ch = 0; ch < c; ch++) {
                bp[ch] = tap[ch];
                ap[ch] = base + static_cast<int32_t>(ch);
              }
              seeded = true;
              continue;
            }
            for (int64_t ch = 0; ch < c; ch++) {
              const bool greater = tap[ch] > bp[ch];
              bp[ch] = greater ? tap[ch] : bp[ch];
              ap[ch] = greater ? base + static_cast<int32_t>(ch) : ap[ch];
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

// batchNormTraining(x, gamma, beta, y, mean, variance, channels, epsilon)
//
// Training-mode batch norm over every axis but the last (NHWC): per-channel mean and (biased) variance of
// x, y = (x − mean)·γ/√(var + ε) + β. Sums run in double, so the variance of a large activation is not
// the difference of two rounded float sums.
Napi::Value BatchNormTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t c = info[6].As<Napi::Number>().Int64Value();
  const double eps = info[7].As<Napi::Number>().DoubleValue();
  if (c < 1) throw Napi::RangeError::New(env, "channels must be at least 1");
  auto xa = info[0].As<Napi::Float32Array>();
  const int64_t total = static_cast<int64_t>(xa.ElementLength());
  if (total % c != 0) throw Napi::RangeError::New(env, "x's size is not a multiple of the channels");
  const int64_t rows = total / c;
  const float* x = floats(info[0], total, "x");
  const float* gamma = floats(info[1], c, "gamma");
  const float* beta = floats(info[2], c, "beta");
  float* y = floats(info[3], total, "y");
  float* mean = floats(info[4], c, "mean");
  float* variance = floats(info[5], c, "variance");
  std::vector<double> sum(c, 0.0), sq(c, 0.0);
  for (int64_t r = 0; r < rows; r++) {
    const float* row = x + r * c;
    for (int64_t ch = 0; ch < c; ch++) sum[ch] += row[ch];
  }
  for (int64_t ch = 0; ch < c; ch++) sum[ch] /= static_cast<double>(rows);
  for (int64_t r = 0; r < rows; r++) {
    const float* row = x + r * c;
    for (int64_t ch = 0; ch < c; ch++) {
      const double d = row[ch] - sum[ch];
      sq[ch] += d * d;
    }
  }
  std::vector<float> scale(c), shift(c);
  for (int64_t ch = 0; ch < c; ch++) {
    const double var = sq[ch] / static_cast<double>(rows);
    mean[ch] = static_cast<float>(sum[ch]);
    variance[ch] = static_cast<float>(var);
    const double s = gamma[ch] / std::sqrt(var + eps);
    scale[ch] = static_cast<float>(s);
    shift[ch] = static_cast<float>(beta[ch] - sum[ch] * s);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* in = x + r * c;
    float* out = y + r * c;
    for (int64_t ch = 0; ch < c; ch++) out[ch] = in[ch] * scale[ch] + shift[ch];
  }
  return env.Undefined();
}

// batchNormTrainingGrad(x, dy, gamma, mean, variance, dMean | null, dVariance | null, dx, dGamma, dBeta,
//                       channels, epsilon)
//
// With x̂ = (x − μ)·r, r = 1/√(σ² + ε), n rows: dβ = Σdy, dγ = Σdy·x̂, and
// dx = γr/n·(n·dy − dβ − x̂·dγ) + dμ/n + dσ²·2(x − μ)/n (the last two when the batch statistics
// themselves feed the loss; for the moving averages alone they are zero).
Napi::Value BatchNormTrainingGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t c = info[10].As<Napi::Number>().Int64Value();
  const double eps = info[11].As<Napi::Number>().DoubleValue();
  if (c < 1) throw Napi::RangeError::New(env, "channels must be at least 1");
  const int64_t total = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength());
  if (total % c != 0) throw Napi::RangeError::New(env, "x's size is not a multiple of the channels");
  const int64_t rows = total / c;
  const float* x = floats(info[0], total, "x");
  const float* dy = floats(info[1], total, "dy");
  const float* gamma = floats(info[2], c, "gamma");
  const float* mean = floats(info[3], c, "mean");
  const float* variance = floats(info[4], c, "variance");
  const bool hasDMean = !info[5].IsNull() && !info[5].IsUndefined();
  const bool hasDVar = !info[6].IsNull() && !info[6].IsUndefined();
  const float* dMean = hasDMean ? floats(info[5], c, "dMean") : nullptr;
  const float* dVar = hasDVar ? floats(info[6], c, "dVariance") : nullptr;
  float* dx = floats(info[7], total, "dx");
  float* dGamma = floats(info[8], c, "dGamma");
  float* dBeta = floats(info[9], c, "dBeta");
  std::vector<double> sumDy(c, 0.0), sumDyXc(c, 0.0);
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    const float* gr = dy + r * c;
    for (int64_t ch = 0; ch < c; ch++) {
      sumDy[ch] += gr[ch];
      sumDyXc[ch] += static_cast<double>(gr[ch]) * (xr[ch] - mean[ch]);
    }
  }
  const double n = static_cast<double>(rows);
  // dx = a·dy + b·(x − μ) + k per channel.
  std::vector<float> a(c), b(c), k(c);
  for (int64_t ch = 0; ch < c; ch++) {
    const double r = 1.0 / std::sqrt(static_cast<double>(variance[ch]) + eps);
    dBeta[ch] = static_cast<float>(sumDy[ch]);
    dGamma[ch] = static_cast<float>(sumDyXc[ch] * r);
    const double g = gamma[ch] * r;
    a[ch] = static_cast<float>(g);
    b[ch] = static_cast<float>(-g * r * r * sumDyXc[ch] / n + (hasDVar ? 2.0 * dVar[ch] / n : 0.0));
    k[ch] = static_cast<float>(-g * sumDy[ch] / n + (hasDMean ? dMean[ch] / n : 0.0));
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    const float* gr = dy + r * c;
    float* out = dx + r * c;
    for (int64_t ch = 0; ch < c; ch++) out[ch] = a[ch] * gr[ch] + b[ch] * (xr[ch] - mean[ch]) + k[ch];
  }
  return env.Undefined();
}

// reluGrad(dy, y, dx): dx = dy where relu's output y > 0, else 0 (tfjs-core's rule, on the output).
Napi::Value ReluGrad(const Napi::CallbackInfo& info) {
  const int64_t total = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength());
  const float* dy = floats(info[0], total, "dy");
  const float* y = floats(info[1], total, "y");
  float* dx = floats(info[2], total, "dx");
#pragma omp parallel for schedule(static) if (total > 65536)
  // A multiply, not a select: dy·0 keeps the sign of zero exactly as tfjs-core's dy·step(x) does.
  for (int64_t i = 0; i < total; i++) dx[i] = dy[i] * (y[i] > 0.f ? 1.f : 0.f);
  return info.Env().Undefined();
}

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

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "threads must be at least 1");
  omp_set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  const dnnl_version_t* v = dnnl_version();
  out.Set("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  out.Set("threads", omp_get_max_threads());
  auto isa = dnnl::get_effective_cpu_isa();
  const char* name = "sse41 or older";
  switch (isa) {
    case dnnl::cpu_isa::avx: name = "avx"; break;
    case dnnl::cpu_isa::avx2: name = "avx2"; break;
    case dnnl::cpu_isa::avx512_core: name = "avx512"; break;
    case dnnl::cpu_isa::avx512_core_vnni: name = "avx512 vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: name = "avx512 bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: name = "avx512 amx"; break;
    default: break;
  }
  out.Set("isa", name);
  size_t cachedCount = forwards.size() + backwardDatas.size() + backwardWeights.size() + matmuls.size();
  out.Set("cachedPrimitives", static_cast<double>(cachedCount));
  // Memory the kernels hold beside TF.js's tensors: the shared filter copy and scratchpad.
  out.Set("filterCopyBytes", static_cast<double>(filterCopy.size()));
  out.Set("scratchpadBytes", static_cast<double>(scratchpad.size()));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2d", Napi::Function::New(env, Conv2d));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2dBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2dBackpropFilter));
  exports.Set("matMul", Napi::Function::New(env, MatMulEntry));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("batchNormTraining", Napi::Function::New(env, BatchNormTraining));
  exports.Set("batchNormTrainingGrad", Napi::Function::New(env, BatchNormTrainingGrad));
  exports.Set("reluGrad", Napi::Function::New(env, ReluGrad));
  exports.Set("slice", Napi::Function::New(env, Slice));
  exports.Set("pad", Napi::Function::New(env, Pad));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  return exports;
}

}  // namespace

NODE_API_MODULE(protopool_native, Init)
