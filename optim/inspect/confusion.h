// Confusion matrices: counts of (true class, predicted class), as a table, a CSV and a
// picture (cells shaded by the share of their row, each with its count and percentage).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io/png_image.h"
#include "core/tensor.h"

namespace kiln {

struct ConfusionMatrix {
  int64_t classes = 0;
  std::vector<int64_t> counts;  // [true][predicted], row-major

  int64_t at(int64_t truth, int64_t predicted) const { return counts[static_cast<size_t>(truth * classes + predicted)]; }
  int64_t row_total(int64_t truth) const;
  // The share of row `truth` predicted as `predicted` (0 for an empty row).
  double row_fraction(int64_t truth, int64_t predicted) const;
  int64_t total() const;
  int64_t correct() const;  // the diagonal
};

// The class each row of scores picks: the arg-max of [N,K] scores (the first maximum wins),
// or for [N,1] scores (one sigmoid output) class 1 where the score is >= 0.5.
std::vector<int32_t> predicted_classes(const Tensor& scores);

// scores: [N,K] or [N,1] as above; labels: N classes. classes: K (>= the largest label + 1
// and, for [N,K] scores, K). Throws std::invalid_argument for a label outside 0..classes-1 or
// a count that disagrees.
ConfusionMatrix confusion_matrix(const Tensor& scores, const std::vector<int32_t>& labels, int64_t classes = 0);

// Rows "true,predicted,count,row_fraction", one per cell, with a header; written atomically.
void write_confusion_csv(const std::string& path, const ConfusionMatrix& cm, const std::vector<std::string>& names = {});
// names: one per class (default "0", "1", ...). The true class runs down, the prediction across.
RgbCanvas render_confusion(const ConfusionMatrix& cm, const std::vector<std::string>& names = {},
                           const std::string& title = "Confusion matrix");

}  // namespace kiln
