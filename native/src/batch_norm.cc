// Training-mode batch norm over NHWC buffers, forward and gradient: statistics, then one pass to write.
#include "common.h"

namespace protopool {

namespace {

// An NHWC activation seen as rows of `channels` values: the shape every kernel here works on.
struct Rows {
  int64_t channels, total, rows;
};

Rows rowsOf(const Napi::Value& x, const Napi::Value& channels) {
  const int64_t c = channels.As<Napi::Number>().Int64Value();
  if (c < 1) throw Napi::RangeError::New(x.Env(), "channels must be at least 1");
  if (!x.IsTypedArray()) throw Napi::TypeError::New(x.Env(), "x must be a Float32Array");
  const int64_t total = static_cast<int64_t>(x.As<Napi::TypedArray>().ElementLength());
  if (total % c != 0) throw Napi::RangeError::New(x.Env(), "x's size is not a multiple of the channels");
  return {c, total, total / c};
}

// Rows per block of the per-channel sums below: fixed, so the sums do not depend on the thread count.
constexpr int64_t kBlockRows = 256;

// Whether a pass over `total` elements is worth a parallel region: an element visit counted as 16
// multiply-adds' worth of time (memory-bound), so from ~250k elements on.
bool parallelPass(int64_t total) { return threadsFor(static_cast<double>(total) * 16) > 1; }

// K per-channel sums over every row: each block of kBlockRows rows fills its own partial sums (in parallel),
// then the blocks are added in order. The result is the same double on any number of threads; a parallel
// reduction clause would change the statistics' last bits with the thread count, and so the trained model.
// `row(r, acc)` adds row r's terms to acc[k·c + ch].
template <int K, class Row>
std::array<std::vector<double>, K> channelSums(int64_t rows, int64_t c, Row row) {
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  std::vector<double> part(static_cast<size_t>(blocks * K * c), 0.0);
#pragma omp parallel for schedule(static) if (parallelPass(rows * c))
  for (int64_t b = 0; b < blocks; b++) {
    double* acc = part.data() + b * K * c;
    const int64_t end = std::min(rows, (b + 1) * kBlockRows);
    for (int64_t r = b * kBlockRows; r < end; r++) row(r, acc);
  }
  std::array<std::vector<double>, K> out;
  for (auto& v : out) v.assign(static_cast<size_t>(c), 0.0);
  for (int64_t b = 0; b < blocks; b++)
    for (int k = 0; k < K; k++)
      for (int64_t ch = 0; ch < c; ch++) out[k][ch] += part[(b * K + k) * c + ch];
  return out;
}

}  // namespace

// batchNormTraining(x, gamma, beta, y, mean, variance, channels, epsilon)
//
// Training-mode batch norm over every axis but the last (NHWC): per-channel mean and (biased) variance of
// x, y = (x − mean)·γ/√(var + ε) + β. Sums run in double, so the variance of a large activation is not
// the difference of two rounded float sums.
Napi::Value BatchNormTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto [c, total, rows] = rowsOf(info[0], info[6]);
  const double eps = info[7].As<Napi::Number>().DoubleValue();
  const float* x = floats(info[0], total, "x");
  const float* gamma = floats(info[1], c, "gamma");
  const float* beta = floats(info[2], c, "beta");
  float* y = floats(info[3], total, "y");
  float* mean = floats(info[4], c, "mean");
  float* variance = floats(info[5], c, "variance");
  // Two passes: the mean first, then squares about it (one pass of x² − mean² loses the variance of a
  // large-valued activation to cancellation).
  auto [sum] = channelSums<1>(rows, c, [&](int64_t r, double* acc) {
    const float* row = x + r * c;
    for (int64_t ch = 0; ch < c; ch++) acc[ch] += row[ch];
  });
  for (int64_t ch = 0; ch < c; ch++) sum[ch] /= static_cast<double>(rows);
  auto [sq] = channelSums<1>(rows, c, [&](int64_t r, double* acc) {
    const float* row = x + r * c;
    for (int64_t ch = 0; ch < c; ch++) {
      const double d = row[ch] - sum[ch];
      acc[ch] += d * d;
    }
  });
  std::vector<float> scale(c), shift(c);
  for (int64_t ch = 0; ch < c; ch++) {
    const double var = sq[ch] / static_cast<double>(rows);
    mean[ch] = static_cast<float>(sum[ch]);
    variance[ch] = static_cast<float>(var);
    const double s = gamma[ch] / std::sqrt(var + eps);
    scale[ch] = static_cast<float>(s);
    shift[ch] = static_cast<float>(beta[ch] - sum[ch] * s);
  }
#pragma omp parallel for schedule(static) if (parallelPass(total))
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
  const auto [c, total, rows] = rowsOf(info[0], info[10]);
  const double eps = info[11].As<Napi::Number>().DoubleValue();
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
  auto [sumDy, sumDyXc] = channelSums<2>(rows, c, [&](int64_t r, double* acc) {
    const float* xr = x + r * c;
    const float* gr = dy + r * c;
    for (int64_t ch = 0; ch < c; ch++) {
      acc[ch] += gr[ch];
      acc[c + ch] += static_cast<double>(gr[ch]) * (xr[ch] - mean[ch]);
    }
  });
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
#pragma omp parallel for schedule(static) if (parallelPass(total))
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    const float* gr = dy + r * c;
    float* out = dx + r * c;
    for (int64_t ch = 0; ch < c; ch++) out[ch] = a[ch] * gr[ch] + b[ch] * (xr[ch] - mean[ch]) + k[ch];
  }
  return env.Undefined();
}

// batchNormInference(x, mean, variance, offset | null, scale | null, y, channels, epsilon)
//
// Inference-mode batch norm (the moving statistics): y = (x − mean)·scale/√(var + ε) + offset, folded
// into one multiply-add per element.
Napi::Value BatchNormInference(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto [c, total, rows] = rowsOf(info[0], info[6]);
  const double eps = info[7].As<Napi::Number>().DoubleValue();
  const float* x = floats(info[0], total, "x");
  const float* mean = floats(info[1], c, "mean");
  const float* variance = floats(info[2], c, "variance");
  const bool hasOffset = !info[3].IsNull() && !info[3].IsUndefined();
  const bool hasScale = !info[4].IsNull() && !info[4].IsUndefined();
  const float* offset = hasOffset ? floats(info[3], c, "offset") : nullptr;
  const float* scale = hasScale ? floats(info[4], c, "scale") : nullptr;
  float* y = floats(info[5], total, "y");
  std::vector<float> a(c), b(c);
  for (int64_t ch = 0; ch < c; ch++) {
    const double s = (hasScale ? scale[ch] : 1.0) / std::sqrt(static_cast<double>(variance[ch]) + eps);
    a[ch] = static_cast<float>(s);
    b[ch] = static_cast<float>((hasOffset ? offset[ch] : 0.0) - mean[ch] * s);
  }
#pragma omp parallel for schedule(static) if (parallelPass(total))
  for (int64_t r = 0; r < rows; r++) {
    const float* in = x + r * c;
    float* out = y + r * c;
    for (int64_t ch = 0; ch < c; ch++) out[ch] = in[ch] * a[ch] + b[ch];
  }
  return env.Undefined();
}

}  // namespace protopool
