#include "optim/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kiln {

double accuracy(const Tensor& scores, const std::vector<int32_t>& labels) {
  check_arg(scores.dim() == 2 && scores.size(0) == static_cast<int64_t>(labels.size()), "accuracy",
            "scores " + shape_str(scores.shape()) + " do not match " + std::to_string(labels.size()) +
                " labels");
  const int64_t N = scores.size(0), K = scores.size(1);
  if (N == 0) return 0.0;
  int64_t correct = 0;
  const float* p = scores.data();
  for (int64_t i = 0; i < N; ++i) {
    const float* row = p + i * K;
    correct += (std::max_element(row, row + K) - row) == labels[i];
  }
  return static_cast<double>(correct) / static_cast<double>(N);
}

double categorical_cross_entropy(const Tensor& probs, const Tensor& targets) {
  check_arg(probs.dim() == 2 && probs.shape() == targets.shape(), "categorical_cross_entropy",
            "probabilities " + shape_str(probs.shape()) + " and targets " +
                shape_str(targets.shape()) + " must both be [N,K]");
  const int64_t N = probs.size(0);
  if (N == 0) return 0.0;
  constexpr double kEps = 1e-7;
  double total = 0.0;
  const float* p = probs.data();
  const float* t = targets.data();
  for (int64_t i = 0; i < probs.numel(); ++i)
    if (t[i] != 0.0f) total -= t[i] * std::log(std::clamp<double>(p[i], kEps, 1.0 - kEps));
  return total / static_cast<double>(N);
}

double roc_auc(const std::vector<float>& scores, const std::vector<int32_t>& labels) {
  check_arg(scores.size() == labels.size(), "roc_auc",
            std::to_string(scores.size()) + " scores for " + std::to_string(labels.size()) + " labels");
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of the (average, 1-based) ranks of the positives; a tie group shares its mean rank.
  double rank_sum = 0.0;
  int64_t positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k)
      if (labels[order[k]] != 0) {
        rank_sum += mean_rank;
        ++positives;
      }
    i = j;
  }
  const int64_t negatives = static_cast<int64_t>(n) - positives;
  if (positives == 0 || negatives == 0) return std::numeric_limits<double>::quiet_NaN();
  const double u = rank_sum - 0.5 * static_cast<double>(positives) * static_cast<double>(positives + 1);
  return u / (static_cast<double>(positives) * static_cast<double>(negatives));
}

}  // namespace kiln
