// The addon's exports: every kernel entry point, the thread count, and what the library runs on.
//
// Every entry point is synchronous and runs on the JS thread; oneDNN parallelises inside with OpenMP.
#include "common.h"

namespace protopool {
namespace {

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
  size_t cachedCount = convolutionPrimitives() + matMulPrimitives();
  out.Set("cachedPrimitives", static_cast<double>(cachedCount));
  // Memory the kernels hold beside TF.js's tensors: the shared filter copy and scratchpad.
  out.Set("filterCopyBytes", static_cast<double>(filterCopy.size()));
  out.Set("scratchpadBytes", static_cast<double>(scratchpad.size()));
  out.Set("gatherBytes", static_cast<double>(gatheredX.size() + gatheredDy.size()));
  // Filters of unchanging weights kept in their primitives' layouts (convolution.cc `filterFor`).
  out.Set("keptFilterBytes", static_cast<double>(keptFilterBytes()));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2d", Napi::Function::New(env, Conv2d));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2dBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2dBackpropFilter));
  exports.Set("conv2dBackpropFilterMethod", Napi::Function::New(env, Conv2dBackpropFilterMethod));
  exports.Set("matMul", Napi::Function::New(env, MatMulEntry));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("batchNormTraining", Napi::Function::New(env, BatchNormTraining));
  exports.Set("batchNormTrainingGrad", Napi::Function::New(env, BatchNormTrainingGrad));
  exports.Set("batchNormInference", Napi::Function::New(env, BatchNormInference));
  exports.Set("reluGrad", Napi::Function::New(env, ReluGrad));
  exports.Set("adam", Napi::Function::New(env, Adam));
  exports.Set("slice", Napi::Function::New(env, Slice));
  exports.Set("pad", Napi::Function::New(env, Pad));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  return exports;
}

}  // namespace
}  // namespace protopool

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return protopool::Init(env, exports); }

NODE_API_MODULE(protopool_native, InitAddon)
