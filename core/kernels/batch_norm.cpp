// Batch normalisation over x viewed as [M, C]. In NHWC the channel is the contiguous axis, so
// every pass is a parallel loop over rows with a vectorisable inner loop over channels.
// Per-channel sums are taken per thread in double (then combined in a fixed order), which
// keeps M ~ 1e5 rows accurate and makes the result independent of scheduling.
#include "core/kernels/batch_norm.h"
#include "core/kernels/relu_mask.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace kiln {
namespace {

// Per-channel sums over all rows of Terms quantities at once (the backward needs two):
// row_terms(m, acc) adds row m's contributions into acc[0..Terms*C).
template <int Terms, typename RowTerms>
std::vector<double> channel_sums(int64_t M, int64_t C, RowTerms row_terms) {
  const int max_threads = omp_get_max_threads();
  const size_t width = static_cast<size_t>(Terms * C);
  std::vector<double> partial(static_cast<size_t>(max_threads) * width, 0.0);
#pragma omp parallel
  {
    // Each thread sums into its own allocation and copies the result out once: summing in
    // place into `partial`, the threads' neighbouring slices shared a cache line, written by
    // both on every row (the backward's sums did not get faster with a second thread).
    std::vector<double> mine(width, 0.0);
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) row_terms(m, mine.data());
    std::copy(mine.begin(), mine.end(),
              partial.begin() + static_cast<std::ptrdiff_t>(omp_get_thread_num() * width));
  }
  std::vector<double> sums(width, 0.0);
  for (int t = 0; t < max_threads; ++t)
    for (size_t i = 0; i < width; ++i) sums[i] += partial[static_cast<size_t>(t) * width + i];
  return sums;
}

// y = (x - mean[c]) * scale[c] + beta[c], the form both forwards reduce to, and with relu
// max(0, y). Subtracting the mean first, rather than folding it into a shift, avoids
// cancellation when |mean| >> std.
template <bool Relu>
void normalise(int64_t M, int64_t C, const float* x, const float* mean, const float* scale,
               const float* beta, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * C;
    float* yr = y + m * C;
    for (int64_t c = 0; c < C; ++c) {
      const float v = (xr[c] - mean[c]) * scale[c] + beta[c];
      yr[c] = Relu ? std::max(v, 0.0f) : v;
    }
  }
}

void normalise(int64_t M, int64_t C, const float* x, const float* mean, const float* scale,
               const float* beta, bool relu, float* y) {
  if (relu) normalise<true>(M, C, x, mean, scale, beta, y);
  else normalise<false>(M, C, x, mean, scale, beta, y);
}

// The backward with the batch norm's output gradient dy itself (Masked false), or with the
// gradient dz of a ReLU after it and that ReLU's output z: dy = z > 0 ? dz : 0 (relu_mask.h).
template <bool Masked>
void backward_train(int64_t M, int64_t C, const float* x, const float* gamma, const float* mean,
                    const float* inv_std, const float* dy, const float* z, float* dx, float* dgamma,
                    float* dbeta, const BatchStatsReduce* reduce, int64_t rows, bool overwrite_dx) {
  const auto grad = [&](int64_t i) {
    if constexpr (Masked) return relu_masked(dy[i], z[i]);
    return dy[i];
  };
  // sums[0..C) = sum dy, sums[C..2C) = sum dy * xhat.
  std::vector<double> sums = channel_sums<2>(M, C, [&](int64_t m, double* acc) {
    const float* xr = x + m * C;
    for (int64_t c = 0; c < C; ++c) {
      const float xhat = (xr[c] - mean[c]) * inv_std[c];
      const float d = grad(m * C + c);
      acc[c] += d;
      acc[C + c] += static_cast<double>(d) * xhat;
    }
  });
  if (dbeta)
    for (int64_t c = 0; c < C; ++c) dbeta[c] += static_cast<float>(sums[c]);
  if (dgamma)
    for (int64_t c = 0; c < C; ++c) dgamma[c] += static_cast<float>(sums[C + c]);
  if (!dx) return;
  if (reduce) (*reduce)(sums.data(), 2 * C);
  const double n = reduce ? static_cast<double>(rows) : static_cast<double>(M);
  // dx = gamma*inv_std * (dy - mean(dy) - xhat * mean(dy*xhat)), folded into per-channel
  // coefficients: dx += k[c] * dy + a[c] * (x - mean[c]) + b[c]. (x - mean) is kept rather
  // than expanding a*x - a*mean, which would cancel when |mean| >> std.
  std::vector<float> k(static_cast<size_t>(C)), a(static_cast<size_t>(C)), b(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double g = static_cast<double>(gamma[c]) * inv_std[c];
    k[c] = static_cast<float>(g);
    a[c] = static_cast<float>(-g * (sums[C + c] / n) * inv_std[c]);
    b[c] = static_cast<float>(-g * (sums[c] / n));
  }
  const float* kp = k.data();
  const float* ap = a.data();
  const float* bp = b.data();
  const auto dx_rows = [&](auto overwrite) {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x + m * C;
      float* dxr = dx + m * C;
      for (int64_t c = 0; c < C; ++c) {
        const float d = kp[c] * grad(m * C + c) + ap[c] * (xr[c] - mean[c]) + bp[c];
        if constexpr (decltype(overwrite)::value) dxr[c] = d;
        else dxr[c] += d;
      }
    }
  };
  if (overwrite_dx) dx_rows(std::true_type{});
  else dx_rows(std::false_type{});
}

}  // namespace

int64_t batch_norm_forward_train(int64_t M, int64_t C, const float* x, const float* gamma,
                                 const float* beta, float eps, float* y, float* mean, float* var,
                                 float* inv_std, const BatchStatsReduce* reduce, bool relu) {
  // Two passes (mean, then squared deviations) rather than E[x^2] - E[x]^2, which cancels
  // badly when |mean| >> std.
  std::vector<double> sum = channel_sums<1>(M, C, [&](int64_t m, double* acc) {
    const float* xr = x + m * C;
    for (int64_t c = 0; c < C; ++c) acc[c] += xr[c];
  });
  sum.push_back(static_cast<double>(M));  // the row count travels with the sums
  if (reduce) (*reduce)(sum.data(), C + 1);
  const double rows = sum[static_cast<size_t>(C)];
  std::vector<double> mean_d(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) mean_d[c] = sum[c] / rows;
  const double* mu = mean_d.data();
  std::vector<double> sq = channel_sums<1>(M, C, [&](int64_t m, double* acc) {
    const float* xr = x + m * C;
    for (int64_t c = 0; c < C; ++c) {
      const double d = xr[c] - mu[c];
      acc[c] += d * d;
    }
  });
  if (reduce) (*reduce)(sq.data(), C);
  std::vector<float> scale(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double v = sq[c] / rows;
    const double istd = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<float>(mu[c]);
    var[c] = static_cast<float>(v);
    inv_std[c] = static_cast<float>(istd);
    scale[c] = static_cast<float>(gamma[c] * istd);
  }
  normalise(M, C, x, mean, scale.data(), beta, relu, y);
  return static_cast<int64_t>(rows);
}

void batch_norm_forward_eval(int64_t M, int64_t C, const float* x, const float* gamma,
                             const float* beta, const float* mean, const float* var, float eps,
                             float* y, bool relu) {
  std::vector<float> scale(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c)
    scale[c] = static_cast<float>(gamma[c] / std::sqrt(static_cast<double>(var[c]) + eps));
  normalise(M, C, x, mean, scale.data(), beta, relu, y);
}

void batch_norm_backward_train(int64_t M, int64_t C, const float* x, const float* gamma,
                               const float* mean, const float* inv_std, const float* dy,
                               float* dx, float* dgamma, float* dbeta,
                               const BatchStatsReduce* reduce, int64_t rows, const float* relu_out,
                               bool overwrite_dx) {
  if (relu_out)
    backward_train<true>(M, C, x, gamma, mean, inv_std, dy, relu_out, dx, dgamma, dbeta, reduce, rows, overwrite_dx);
  else
    backward_train<false>(M, C, x, gamma, mean, inv_std, dy, nullptr, dx, dgamma, dbeta, reduce, rows, overwrite_dx);
}

void batch_norm_forward_train_naive(int64_t M, int64_t C, const float* x, const float* gamma,
                                    const float* beta, float eps, float* y, float* mean,
                                    float* var, float* inv_std) {
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t m = 0; m < M; ++m) sum += x[m * C + c];
    const double mu = sum / M;
    double sq = 0.0;
    for (int64_t m = 0; m < M; ++m) {
      const double d = x[m * C + c] - mu;
      sq += d * d;
    }
    const double v = sq / M;
    const double istd = 1.0 / std::sqrt(v + eps);
    for (int64_t m = 0; m < M; ++m)
      y[m * C + c] = static_cast<float>(gamma[c] * (x[m * C + c] - mu) * istd + beta[c]);
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(v);
    inv_std[c] = static_cast<float>(istd);
  }
}

void batch_norm_backward_train_naive(int64_t M, int64_t C, const float* x, const float* gamma,
                                     const float* mean, const float* inv_std, const float* dy,
                                     float* dx, float* dgamma, float* dbeta) {
  for (int64_t c = 0; c < C; ++c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t m = 0; m < M; ++m) {
      const double xhat = (static_cast<double>(x[m * C + c]) - mean[c]) * inv_std[c];
      sum_dy += dy[m * C + c];
      sum_dy_xhat += dy[m * C + c] * xhat;
    }
    if (dbeta) dbeta[c] += static_cast<float>(sum_dy);
    if (dgamma) dgamma[c] += static_cast<float>(sum_dy_xhat);
    if (!dx) continue;
    for (int64_t m = 0; m < M; ++m) {
      const double xhat = (static_cast<double>(x[m * C + c]) - mean[c]) * inv_std[c];
      dx[m * C + c] += static_cast<float>(static_cast<double>(gamma[c]) * inv_std[c] / M *
                                          (M * static_cast<double>(dy[m * C + c]) - sum_dy -
                                           xhat * sum_dy_xhat));
    }
  }
}

}  // namespace kiln
