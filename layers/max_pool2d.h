// MaxPool2D: [N,H,W,C] -> [N,Ho,Wo,C], Keras' pool_size/strides/padding (strides default to pool_size).
#pragma once

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

struct MaxPool2DOptions {
  int pool = 2;
  int stride = 0;  // 0: same as pool
  Padding padding = Padding::Valid;
};

class MaxPool2D : public Module {
 public:
  explicit MaxPool2D(const MaxPool2DOptions& o = {}) : o_(o) {
    if (o_.stride == 0) o_.stride = o_.pool;
  }
  Tensor forward(const Tensor& x) override { return max_pool2d(x, o_.pool, o_.stride, o_.padding); }
  std::string type_name() const override { return "MaxPooling2D"; }
  std::string describe() const override {
    return std::to_string(o_.pool) + "x" + std::to_string(o_.pool);
  }
  const MaxPool2DOptions& options() const { return o_; }

 private:
  MaxPool2DOptions o_;
};

}  // namespace kiln
