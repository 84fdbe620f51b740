// Softmax, log-softmax and the fused softmax + categorical cross-entropy, over the last axis.
#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/ops/ops.h"

namespace kiln {
namespace {

// Rows of the last axis: [..., K] -> (rows, K).
std::pair<int64_t, int64_t> rows_cols(const char* op, const Tensor& a) {
  check_arg(a.dim() >= 1, op, "needs at least one axis, got " + shape_str(a.shape()));
  const int64_t K = a.size(-1);
  return {K ? a.numel() / K : 0, K};
}

// Writes log-softmax of each row of x into out (stable: subtract the row max). The max comes
// off before the log-sum is: x - (m + log s) would round m + log s to m's float precision,
// an error of 1e-4 once the logits are in the thousands (ONNX's test_softmax_large_number).
void log_softmax_rows(int64_t rows, int64_t K, const float* x, float* out) {
#pragma omp parallel for schedule(static) if (rows * K > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * K;
    float* o = out + r * K;
    const float m = *std::max_element(xr, xr + K);
    double s = 0.0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(xr[k] - m));
    const float log_s = static_cast<float>(std::log(s));
    for (int64_t k = 0; k < K; ++k) o[k] = (xr[k] - m) - log_s;
  }
}

}  // namespace

Tensor softmax(const Tensor& a) {
  // Plain variables, not a structured binding: the backward closure captures them (clang 14
  // cannot capture bindings).
  const auto shape2 = rows_cols("softmax", a);
  const int64_t rows = shape2.first, K = shape2.second;
  Tensor out = Tensor::empty(a.shape());
  log_softmax_rows(rows, K, a.data(), out.data());
  float* y = out.data();
  for (int64_t i = 0; i < out.numel(); ++i) y[i] = std::exp(y[i]);
  if (needs_graph({&a})) {
    Tensor saved = out.detach();
    record(out, "softmax", {a}, [a, saved, rows, K](const Tensor& g) {
      const float* y = saved.data();
      const float* dy = g.data();
      float* dx = a.grad_data();
      for (int64_t r = 0; r < rows; ++r) {
        double dot = 0.0;
        for (int64_t k = 0; k < K; ++k) dot += dy[r * K + k] * y[r * K + k];
        for (int64_t k = 0; k < K; ++k)
          dx[r * K + k] += y[r * K + k] * (dy[r * K + k] - static_cast<float>(dot));
      }
    });
  }
  return out;
}

Tensor log_softmax(const Tensor& a) {
  const auto shape2 = rows_cols("log_softmax", a);
  const int64_t rows = shape2.first, K = shape2.second;
  Tensor out = Tensor::empty(a.shape());
  log_softmax_rows(rows, K, a.data(), out.data());
  if (needs_graph({&a})) {
    Tensor saved = out.detach();
    record(out, "log_softmax", {a}, [a, saved, rows, K](const Tensor& g) {
      const float* ls = saved.data();
      const float* dy = g.data();
      float* dx = a.grad_data();
      for (int64_t r = 0; r < rows; ++r) {
        double total = 0.0;
        for (int64_t k = 0; k < K; ++k) total += dy[r * K + k];
        for (int64_t k = 0; k < K; ++k)
          dx[r * K + k] += dy[r * K + k] - std::exp(ls[r * K + k]) * static_cast<float>(total);
      }
    });
  }
  return out;
}

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& targets) {
  check_arg(logits.dim() == 2 && logits.shape() == targets.shape(), "softmax_cross_entropy",
            "logits " + shape_str(logits.shape()) + " and targets " + shape_str(targets.shape()) +
                " must both be [N,K]");
  const int64_t N = logits.size(0), K = logits.size(1);
  check_arg(N > 0, "softmax_cross_entropy", "empty batch " + shape_str(logits.shape()));
  Tensor logp = Tensor::empty(logits.shape());
  log_softmax_rows(N, K, logits.data(), logp.data());
  const float* lp = logp.data();
  const float* t = targets.data();
  double loss = 0.0;
  for (int64_t i = 0; i < N * K; ++i)
    if (t[i] != 0.0f) loss -= static_cast<double>(t[i]) * lp[i];
  Tensor out = Tensor::scalar(static_cast<float>(loss / N));

  record(out, "softmax_cross_entropy", {logits, targets}, [logits, targets, logp, N, K](const Tensor& g) {
    const float scale = g.data()[0] / static_cast<float>(N);
    const float* lp = logp.data();
    const float* t = targets.data();
    if (logits.requires_grad()) {
      float* dz = logits.grad_data();
      for (int64_t r = 0; r < N; ++r) {
        float tsum = 0.0f;
        for (int64_t k = 0; k < K; ++k) tsum += t[r * K + k];
        for (int64_t k = 0; k < K; ++k)
          dz[r * K + k] += scale * (std::exp(lp[r * K + k]) * tsum - t[r * K + k]);
      }
    }
    if (targets.requires_grad()) {
      float* dt = targets.grad_data();
      for (int64_t i = 0; i < N * K; ++i) dt[i] -= scale * lp[i];
    }
  });
  return out;
}

}  // namespace kiln
