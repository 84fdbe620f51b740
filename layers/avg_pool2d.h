// AvgPool2D: Keras' AveragePooling2D. [N,H,W,C] -> [N,Ho,Wo,C], pool_size/strides/padding
// (strides default to pool_size); with "same" padding the padded cells are not averaged in.
#pragma once

#include "core/ops/ops.h"
#include "layers/max_pool2d.h"  // MaxPool2DOptions: the same three options
#include "layers/module.h"

namespace kiln {

using AvgPool2DOptions = MaxPool2DOptions;

class AvgPool2D : public Module {
 public:
  explicit AvgPool2D(const AvgPool2DOptions& o = {}) : o_(o) {
    if (o_.stride == 0) o_.stride = o_.pool;
  }
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, o_.pool, o_.stride, o_.padding); }
  std::string type_name() const override { return "AveragePooling2D"; }
  std::string describe() const override {
    return std::to_string(o_.pool) + "x" + std::to_string(o_.pool);
  }
  const AvgPool2DOptions& options() const { return o_; }

 private:
  AvgPool2DOptions o_;
};

}  // namespace kiln
