// oneDNN batched matMul over TF.js's float32 buffers, transposes as strides, batch 1 broadcast, bias and ReLU fused.
#include "common.h"

namespace protopool {
namespace {

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
    return {d, userScratchpad(relu), cpu()};
  }
  MatMulPrim(const MatMul& g, bool bias, bool relu) : pd(make(g, bias, relu)), prim(pd) {}
};

std::unordered_map<std::string, std::unique_ptr<MatMulPrim>> matmuls;

}  // namespace

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
  // The head's matMuls are tiny: on one thread they take less than waking a second one does.
  const int threads = threadsFor(static_cast<double>(g.batch()) * g.m * g.k * g.n);
  ThreadScope scope(threads);
  return guarded(env, [&] {
    auto& k = cached<MatMulPrim>(matmuls, keyOf("m", v, 7, (hasBias ? 1 : 0) | (relu ? 2 : 0) | (threads << 2)),
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

size_t matMulPrimitives() { return matmuls.size(); }

}  // namespace protopool
