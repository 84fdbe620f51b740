// ROC curves: the exact curve behind the AUC (optim/train/metrics.h), one point per distinct
// score, as a CSV and a plot with the AUC printed on it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io/png_image.h"

namespace kiln {

struct RocCurve {
  // From (0,0) to (1,1): point i counts as positive every example whose score is >=
  // threshold[i] (threshold[0] = +inf, none). Examples with tied scores enter together, so
  // the curve is the one whose trapezoid area is the rank-based AUC with ties counted half.
  std::vector<double> fpr, tpr, threshold;
  double auc = 0;
  int64_t positives = 0, negatives = 0;
};

// scores: the positive class's score per example; labels: 0 or 1. Throws std::invalid_argument
// for other labels, sizes that differ, or a class that is absent (no curve then).
RocCurve roc_curve(const std::vector<float>& scores, const std::vector<int32_t>& labels);

// "threshold,fpr,tpr" per point, with a header; written atomically.
void write_roc_csv(const std::string& path, const RocCurve& roc);
// The curve over the chance diagonal, axes "false positive rate" and "true positive rate",
// the AUC and the class counts in the title.
RgbCanvas render_roc(const RocCurve& roc, const std::string& title = "ROC curve");

}  // namespace kiln
