// Metrics of a classifier's outputs: accuracy, categorical cross-entropy and exact ROC AUC.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace kiln {

// scores: [N,K] (probabilities or logits), labels: N class indices -> fraction with
// argmax == label (the first maximum wins ties).
double accuracy(const Tensor& scores, const std::vector<int32_t>& labels);
// probs: [N,K] probabilities, targets: [N,K] one-hot -> mean of -sum t log(clip(p, 1e-7, 1-1e-7)),
// the clipping Keras applies.
double categorical_cross_entropy(const Tensor& probs, const Tensor& targets);
// Area under the ROC curve for binary labels (0/1) and scores of the positive class, exact
// and rank-based (Mann-Whitney U); tied scores count one half. NaN when one class is absent.
double roc_auc(const std::vector<float>& scores, const std::vector<int32_t>& labels);

}  // namespace kiln
