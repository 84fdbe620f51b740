// Reshape: Keras' Reshape layer. [N, ...] -> [N, target...], the numbers in the same
// (row-major) order; one extent of the target may be -1. A view, no copy.
#pragma once

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

class Reshape : public Module {
 public:
  // target: one example's shape, without the batch axis.
  explicit Reshape(Shape target) : target_(std::move(target)) {
    int unknown = 0;
    for (int64_t d : target_) {
      check_arg(d > 0 || d == -1, "Reshape", "target " + shape_str(target_) + " has extent " +
                                                 std::to_string(d) + "; extents are positive or -1");
      unknown += d == -1;
    }
    check_arg(unknown <= 1, "Reshape", "target " + shape_str(target_) + " has more than one -1");
  }
  Tensor forward(const Tensor& x) override {
    check_arg(x.dim() >= 1, "Reshape", "input " + shape_str(x.shape()) + " has no batch axis");
    Shape s = {x.size(0)};
    s.insert(s.end(), target_.begin(), target_.end());
    return reshape(x, s);
  }
  std::string type_name() const override { return "Reshape"; }
  std::string describe() const override { return shape_str(target_); }
  const Shape& target() const { return target_; }

 private:
  Shape target_;
};

}  // namespace kiln
