// Metrics: accuracy, cross-entropy with Keras' clipping, exact rank-based ROC AUC with ties.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/train/metrics.h"

namespace kiln {
namespace {

// AUC by definition: the fraction of (positive, negative) pairs ranked right, ties 1/2.
double auc_by_pairs(const std::vector<float>& s, const std::vector<int32_t>& y) {
  double good = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        good += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return good / pairs;
}

TEST(Metrics, AucHandCases) {
  EXPECT_DOUBLE_EQ(roc_auc({0.1f, 0.2f, 0.8f, 0.9f}, {0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.9f, 0.8f, 0.2f, 0.1f}, {0, 0, 1, 1}), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.5f, 0.5f, 0.5f, 0.5f}, {0, 1, 0, 1}), 0.5);  // all tied
  // One positive above both negatives, one tied with a negative: (2 + 1.5) / 4.
  EXPECT_DOUBLE_EQ(roc_auc({0.3f, 0.6f, 0.6f, 0.9f}, {0, 0, 1, 1}), 0.875);
  EXPECT_TRUE(std::isnan(roc_auc({0.1f, 0.2f}, {1, 1})));
}

TEST(Metrics, AucEqualsPairCountOnRandomScoresWithTies) {
  std::vector<float> s;
  std::vector<int32_t> y;
  for (int i = 0; i < 300; ++i) {
    s.push_back(static_cast<float>((i * 37) % 23) / 23.0f);  // many ties
    y.push_back((i * 11) % 7 < 3 ? 1 : 0);
  }
  EXPECT_NEAR(roc_auc(s, y), auc_by_pairs(s, y), 1e-12);
}

TEST(Metrics, AccuracyAndCrossEntropy) {
  const Tensor p = Tensor::from_vector({3, 2}, {0.9f, 0.1f, 0.2f, 0.8f, 1.0f, 0.0f});
  EXPECT_DOUBLE_EQ(accuracy(p, {0, 0, 0}), 2.0 / 3.0);
  const Tensor t = Tensor::from_vector({3, 2}, {1, 0, 1, 0, 0, 1});
  // The third row's p = 0 for its class is clipped to 1e-7, as Keras does.
  const double expected = -(std::log(0.9) + std::log(0.2) + std::log(1e-7)) / 3.0;
  EXPECT_NEAR(categorical_cross_entropy(p, t), expected, 1e-6);
  EXPECT_THROW(accuracy(p, {0, 1}), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
