// oneDNN convolutions over TF.js's own float32 buffers (NHWC activations, HWIO filters), both gradients.
//
// Activations are handed to oneDNN in place (nhwc is a layout its AVX2 kernels take directly), so a
// call copies nothing but filters, which are small: they are reordered into the blocked layout the
// chosen implementation wants (once, for filters the caller says do not change), and filter gradients back
// into HWIO. Primitives (and the buffers for
// those reorders) are cached per geometry, since a training run repeats a handful of shapes forever.
//
// Filter gradients of wide layers on small maps go another way (`backwardWeightsByTaps`): oneDNN 2.6's nhwc kernels either
// fall back to im2col + gemm there (ResNet-18's last stage at 64 px: a 2×2 map, 3×3 taps, 512 channels) or
// run below what one matrix product per tap reaches. See `useTaps`.
#include "common.h"

namespace protopool {
namespace {

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

Conv readConv(const Napi::Value& value) {
  auto arr = value.As<Napi::Int32Array>();
  if (arr.ElementLength() != Conv::kFields) throw Napi::Error::New(value.Env(), "conv geometry must have 17 fields");
  const int32_t* g = arr.Data();
  return Conv{g[0], g[1], g[2],  g[3],  g[4],  g[5],  g[6],  g[7], g[8],
              g[9], g[10], g[11], g[12], g[13], g[14], g[15], g[16]};
}

dnnl::convolution_forward::primitive_desc forwardDesc(const Conv& g, bool bias, bool relu) {
  auto wanted = g.weights(tag::any);
  auto d = bias ? dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, g.src(),
                                                  wanted, g.bias(), g.dst(), g.strides(), g.dilation(), g.padL(),
                                                  g.padR())
                : dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, g.src(),
                                                  wanted, g.dst(), g.strides(), g.dilation(), g.padL(), g.padR());
  return {d, userScratchpad(relu), cpu()};
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

/*
 * dW[kh, kw] = Σ over images and the output cells whose tap (kh, kw) lands inside the input of
 *   x[n, oh·sh − top + kh·dh, ow·sw − left + kw·dw, :]ᵀ · dy[n, oh, ow, :]   (a c × co matrix, HWIO's own rows)
 * One gemm per tap, over the rows gathered into two shared buffers. Padding costs nothing: taps that land in
 * it are never gathered, where im2col multiplies by its zeros (5/9 of the work on a 2×2 map with pad 1).
 * Measured on one AVX2 core, batch 50: 512→512 on 2×2 24 → 8 ms, 256→256 on 4×4 21 → 8 ms, 128→128 on 8×8
 * 13.5 → 10.5 ms, 256→512 stride 2 23 → 9 ms; but 64→64 on 16×16 14 → 16.5 ms and a 3-channel stem 15 → 98 ms
 * (gemm's narrow sides are its slow ones), hence the rule: a real window, and c·co ≥ 128·64.
 */
bool useTaps(const Conv& g) { return g.kh * g.kw > 1 && g.c * g.co >= 128 * 64; }

void backwardWeightsByTaps(const Conv& g, const float* x, const float* dy, float* dw) {
  const int64_t cells = g.n * g.oh * g.ow;
  float* gx = static_cast<float*>(gatheredX.get(cells * g.c * sizeof(float)));
  float* gd = static_cast<float*>(gatheredDy.get(cells * g.co * sizeof(float)));
  for (int64_t kh = 0; kh < g.kh; kh++) {
    for (int64_t kw = 0; kw < g.kw; kw++) {
      int64_t rows = 0;
      for (int64_t b = 0; b < g.n; b++) {
        for (int64_t oy = 0; oy < g.oh; oy++) {
          const int64_t iy = oy * g.sh - g.pt + kh * g.dh;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t ox = 0; ox < g.ow; ox++) {
            const int64_t ix = ox * g.sw - g.pl + kw * g.dw;
            if (ix < 0 || ix >= g.w) continue;
            std::memcpy(gx + rows * g.c, x + ((b * g.h + iy) * g.w + ix) * g.c, g.c * sizeof(float));
            std::memcpy(gd + rows * g.co, dy + ((b * g.oh + oy) * g.ow + ox) * g.co, g.co * sizeof(float));
            rows++;
          }
        }
      }
      float* tap = dw + (kh * g.kw + kw) * g.c * g.co;
      if (rows == 0) {
        std::fill(tap, tap + g.c * g.co, 0.f);
        continue;
      }
      auto status = dnnl_sgemm('T', 'N', g.c, g.co, rows, 1.f, gx, g.c, gd, g.co, 0.f, tap, g.co);
      if (status != dnnl_success) throw dnnl::error(status, "dnnl_sgemm for a filter gradient");
    }
  }
}

// Filters in a primitive's layout, kept across calls for weights that do not change: a frozen backbone in the
// warm-up phase, a served model. Reordering ResNet-18's filters cost ~16 ms of a 220 ms two-thread warm-up
// step, every step, for the same bytes. The caller names such a filter by a token (never reused: the JS side
// hands one per tensor, whose data TF.js never changes); token 0 means "do not keep". A kept copy unused for
// kKeptIdleCalls convolution calls is dropped (its tensor is gone, or another model took over), and the
// whole set never passes kKeptMaxBytes.
struct KeptFilter {
  std::unique_ptr<char, void (*)(void*)> data{nullptr, std::free};
  size_t bytes = 0;
  uint64_t lastUse = 0;
};
std::unordered_map<std::string, KeptFilter> keptFilters;
size_t keptBytes = 0;
uint64_t convCalls = 0;
constexpr uint64_t kKeptIdleCalls = 256;
constexpr size_t kKeptMaxBytes = size_t{512} << 20;

void dropKept(std::unordered_map<std::string, KeptFilter>::iterator it) {
  keptBytes -= it->second.bytes;
  keptFilters.erase(it);
}

// Every 64 calls: drop the copies nobody used lately.
void sweepKept() {
  if (++convCalls % 64 != 0) return;
  for (auto it = keptFilters.begin(); it != keptFilters.end();) {
    auto next = std::next(it);
    if (convCalls - it->second.lastUse > kKeptIdleCalls) dropKept(it);
    it = next;
  }
}

// The filter `w` as `layout` wants it: the kept copy for (token, primitive), made on first use; without a
// token (or when the layout is the caller's own), what `layout.in` gives.
memory filterFor(Relayout& layout, float* w, double token, const std::string& primitiveKey) {
  if (token <= 0 || !layout.step) return layout.in(w);
  const std::string key = std::to_string(static_cast<uint64_t>(token)) + "@" + primitiveKey;
  auto it = keptFilters.find(key);
  if (it == keptFilters.end()) {
    const size_t bytes = layout.wanted.get_size();
    while (keptBytes + bytes > kKeptMaxBytes && !keptFilters.empty()) {
      auto oldest = std::min_element(keptFilters.begin(), keptFilters.end(), [](const auto& a, const auto& b) {
        return a.second.lastUse < b.second.lastUse;
      });
      dropKept(oldest);
    }
    KeptFilter kept;
    kept.data.reset(static_cast<char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    if (!kept.data) throw std::bad_alloc();
    kept.bytes = bytes;
    memory copy(layout.wanted, cpu(), kept.data.get());
    ThreadScope scope(layout.threads());
    layout.step->execute(stream(), {{DNNL_ARG_FROM, memory(layout.plain, cpu(), w)}, {DNNL_ARG_TO, copy}});
    keptBytes += bytes;
    it = keptFilters.emplace(key, std::move(kept)).first;
  }
  it->second.lastUse = convCalls;
  return memory(layout.wanted, cpu(), it->second.data.get());
}

std::unordered_map<std::string, std::unique_ptr<Forward>> forwards;
std::unordered_map<std::string, std::unique_ptr<BackwardData>> backwardDatas;
std::unordered_map<std::string, std::unique_ptr<BackwardWeights>> backwardWeights;

}  // namespace

// The token argument at `index`: a positive integer naming an unchanging filter, or 0 (absent: 0).
double tokenArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return 0;
  return info[index].As<Napi::Number>().DoubleValue();
}

// conv2d(x, filter, bias | null, y, geometry: Int32Array(17), relu: boolean, filterToken?: number)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Conv g = readConv(info[4]);
  bool hasBias = !info[2].IsNull() && !info[2].IsUndefined();
  bool relu = info[5].ToBoolean();
  float* x = floats(info[0], g.srcSize(), "x");
  float* w = floats(info[1], g.weightsSize(), "filter");
  float* b = hasBias ? floats(info[2], g.co, "bias") : nullptr;
  float* y = floats(info[3], g.dstSize(), "y");
  const double token = tokenArg(info, 6);
  return guarded(env, [&] {
    sweepKept();
    const std::string key =
        keyOf("f", info[4].As<Napi::Int32Array>().Data(), Conv::kFields, (hasBias ? 1 : 0) | (relu ? 2 : 0));
    auto& f = cached<Forward>(forwards, key, [&] { return std::make_unique<Forward>(g, hasBias, relu); });
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(g.src(), cpu(), x)},
                                         {DNNL_ARG_WEIGHTS, filterFor(f.weights, w, token, key)},
                                         {DNNL_ARG_DST, memory(g.dst(), cpu(), y)}};
    if (hasBias) args.emplace(DNNL_ARG_BIAS, memory(g.bias(), cpu(), b));
    args.emplace(DNNL_ARG_SCRATCHPAD, scratchpadFor(f.pd.scratchpad_desc()));
    f.prim.execute(stream(), args);
    stream().wait();
  });
}

// conv2dBackpropInput(dy, filter, dx, geometry, filterToken?: number)
Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Conv g = readConv(info[3]);
  float* dy = floats(info[0], g.dstSize(), "dy");
  float* w = floats(info[1], g.weightsSize(), "filter");
  float* dx = floats(info[2], g.srcSize(), "dx");
  const double token = tokenArg(info, 4);
  return guarded(env, [&] {
    sweepKept();
    const std::string key = keyOf("d", info[3].As<Napi::Int32Array>().Data(), Conv::kFields, 0);
    auto& k = cached<BackwardData>(backwardDatas, key, [&] { return std::make_unique<BackwardData>(g); });
    k.prim.execute(stream(), {{DNNL_ARG_SCRATCHPAD, scratchpadFor(k.pd.scratchpad_desc())},
                              {DNNL_ARG_DIFF_DST, memory(g.dst(), cpu(), dy)},
                              {DNNL_ARG_WEIGHTS, filterFor(k.weights, w, token, key)},
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
    if (useTaps(g)) return backwardWeightsByTaps(g, x, dy, dw);
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

// Which way conv2dBackpropFilter computes a geometry's gradient ("taps" or "onednn"), for tests and profiles.
Napi::Value Conv2dBackpropFilterMethod(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), useTaps(readConv(info[0])) ? "taps" : "onednn");
}

size_t convolutionPrimitives() { return forwards.size() + backwardDatas.size() + backwardWeights.size(); }

size_t keptFilterBytes() { return keptBytes; }

}  // namespace protopool
