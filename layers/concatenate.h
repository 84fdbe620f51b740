// Concatenate: joins two or more tensors along one axis (Keras' Concatenate; by default the
// last, which in kiln's NHWC is the channels). Every other extent must agree.
#pragma once

#include <cstdint>

#include "layers/merge.h"

namespace kiln {

class Concatenate : public Merge {
 public:
  explicit Concatenate(int64_t axis = -1) : axis_(axis) {}
  std::string type_name() const override { return "Concatenate"; }
  std::string describe() const override { return axis_ == -1 ? "" : "axis " + std::to_string(axis_); }
  int64_t axis() const { return axis_; }

 protected:
  Tensor join(const std::vector<Tensor>& xs) override;

 private:
  int64_t axis_;
};

}  // namespace kiln
