// oneDNN convolutions over TF.js's own float32 buffers (NHWC activations, HWIO filters), both gradients.
//
// Activations are handed to oneDNN in place (nhwc is a layout its AVX2 kernels take directly), so a
// call copies nothing but filters, which are small: they are reordered into the blocked layout the
// chosen implementation wants, and filter gradients back into HWIO. Primitives (and the buffers for
// those reorders) are cached per geometry, since a training run repeats a handful of shapes forever.
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

std::unordered_map<std::string, std::unique_ptr<Forward>> forwards;
std::unordered_map<std::string, std::unique_ptr<BackwardData>> backwardDatas;
std::unordered_map<std::string, std::unique_ptr<BackwardWeights>> backwardWeights;

}  // namespace

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

size_t convolutionPrimitives() { return forwards.size() + backwardDatas.size() + backwardWeights.size(); }

}  // namespace protopool
