// Permute: reorders the axes of each example (Keras' Permute layer). dims are 1-based over
// the example's axes, as in Keras: Permute({3, 1, 2}) takes [N,H,W,C] to [N,C,H,W]. The
// Keras importer also places one at each edge of a channels-first part of a model, since kiln
// computes in NHWC.
#pragma once

#include <vector>

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

class Permute : public Module {
 public:
  explicit Permute(std::vector<int64_t> dims) : dims_(std::move(dims)) {
    std::vector<bool> seen(dims_.size() + 1, false);
    for (int64_t d : dims_) {
      check_arg(d >= 1 && d <= static_cast<int64_t>(dims_.size()) && !seen[static_cast<size_t>(d)],
                "Permute", "dims " + shape_str(dims_) + " must be a permutation of 1.." +
                               std::to_string(dims_.size()));
      seen[static_cast<size_t>(d)] = true;
    }
  }
  Tensor forward(const Tensor& x) override {
    check_arg(x.dim() == static_cast<int64_t>(dims_.size()) + 1, "Permute",
              "input " + shape_str(x.shape()) + " does not have the " +
                  std::to_string(dims_.size()) + " axes per example that dims " +
                  shape_str(dims_) + " reorders");
    std::vector<int64_t> all = {0};
    all.insert(all.end(), dims_.begin(), dims_.end());
    return permute(x, all);
  }
  std::string type_name() const override { return "Permute"; }
  std::string describe() const override { return shape_str(dims_); }
  const std::vector<int64_t>& dims() const { return dims_; }

 private:
  std::vector<int64_t> dims_;
};

}  // namespace kiln
