// What the kernels' files share: oneDNN's engine and stream, argument checks, shared buffers, caches.
#pragma once

#include <napi.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "dnnl.hpp"

namespace protopool {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

inline dnnl::engine& cpu() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

inline dnnl::stream& stream() {
  static dnnl::stream s(cpu());
  return s;
}

inline std::string keyOf(const char* kind, const int32_t* v, size_t count, int extra) {
  std::string key(kind);
  for (size_t i = 0; i < count; i++) key += "," + std::to_string(v[i]);
  return key + "/" + std::to_string(extra);
}

inline float* floats(const Napi::Value& value, int64_t expected, const char* name) {
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

inline SharedBuffer filterCopy, scratchpad;
// The rows a filter gradient by taps gathers (convolution.cc `backwardWeightsByTaps`).
inline SharedBuffer gatheredX, gatheredDy;

// Below this many multiply-adds a call runs on one thread. Between kernels the JS thread runs wasm ops and
// tape bookkeeping, long enough for OpenMP's workers to go to sleep; waking them cost more than small work
// saves (a training step's 200×40·40×64 matMul: under 0.1 ms on one thread, ~2 ms on two).
constexpr double kSmallWork = 4e6;

// The team size for a call of `work` multiply-adds (or element visits): one for small work, else the
// configured count (setThreads).
inline int threadsFor(double work) { return work < kSmallWork ? 1 : omp_get_max_threads(); }

// This thread's OpenMP team size for one call, restored after. oneDNN sizes its parallel regions from it when
// a primitive is made and when it runs, so a primitive is made and run under the same scope (and its cache
// key names the count).
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : saved_(omp_get_max_threads()) {
    if (threads != saved_) omp_set_num_threads(threads);
  }
  ~ThreadScope() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_;
};

// The scratchpad argument for a primitive made with a user-managed scratchpad.
inline memory scratchpadFor(const memory::desc& d) { return memory(d, cpu(), scratchpad.get(d.get_size())); }

// Attributes of every primitive here: the scratchpad is ours (shared), and ReLU may be fused as a post-op.
inline dnnl::primitive_attr userScratchpad(bool relu = false) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
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
    ThreadScope scope(threads());
    step = toWanted ? std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(cpu(), plain, cpu(), wanted))
                    : std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(cpu(), wanted, cpu(), plain));
  }

  // The memory to give the primitive for a buffer in the plain layout (reordering it in first).
  memory in(float* data) {
    memory user(plain, cpu(), data);
    if (!step) return user;
    memory copy = shared();
    ThreadScope scope(threads());
    step->execute(stream(), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, copy}});
    return copy;
  }
  // A filter is small, its reorder memory-bound: one thread unless it is large (a 64×512 add-on filter took
  // 2.8 ms on two threads in a training step, most of it waking the second).
  int threads() const { return threadsFor(static_cast<double>(plain.get_size()) / sizeof(float) * 4); }
  // The memory a primitive writes to; `out(data)` then moves it into the plain buffer.
  memory target(float* data) { return step ? shared() : memory(plain, cpu(), data); }
  void out(float* data) {
    if (!step) return;
    memory user(plain, cpu(), data);
    ThreadScope scope(threads());
    step->execute(stream(), {{DNNL_ARG_FROM, shared()}, {DNNL_ARG_TO, user}});
  }
  memory shared() const { return memory(wanted, cpu(), filterCopy.get(wanted.get_size())); }
};

template <typename T>
inline T& cached(std::unordered_map<std::string, std::unique_ptr<T>>& cache, const std::string& key,
          const std::function<std::unique_ptr<T>()>& make) {
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  // A long-lived server may see many input sizes; past this many, start afresh rather than grow.
  if (cache.size() >= 512) cache.clear();
  return *cache.emplace(key, make()).first->second;
}

template <typename F>
inline Napi::Value guarded(const Napi::Env& env, F&& body) {
  try {
    body();
  } catch (const dnnl::error& e) {
    throw Napi::Error::New(env, std::string("oneDNN: ") + e.what() + " (status " + std::to_string(e.status) + ")");
  }
  return env.Undefined();
}

// The entry points, one file per family; addon.cc exports them.
Napi::Value Conv2d(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo& info);
Napi::Value Conv2dBackpropFilterMethod(const Napi::CallbackInfo& info);
size_t convolutionPrimitives();
size_t keptFilterBytes();
Napi::Value MatMulEntry(const Napi::CallbackInfo& info);
size_t matMulPrimitives();
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info);
Napi::Value BatchNormTraining(const Napi::CallbackInfo& info);
Napi::Value BatchNormTrainingGrad(const Napi::CallbackInfo& info);
Napi::Value BatchNormInference(const Napi::CallbackInfo& info);
Napi::Value ReluGrad(const Napi::CallbackInfo& info);
Napi::Value Adam(const Napi::CallbackInfo& info);
Napi::Value Slice(const Napi::CallbackInfo& info);
Napi::Value Pad(const Napi::CallbackInfo& info);

}  // namespace protopool
