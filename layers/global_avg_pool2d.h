// GlobalAvgPool2D: Keras' GlobalAveragePooling2D. [N,H,W,C] -> [N,C], the mean of each
// channel over the image ([N,1,1,C] with keepdims).
#pragma once

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

class GlobalAvgPool2D : public Module {
 public:
  explicit GlobalAvgPool2D(bool keepdims = false) : keepdims_(keepdims) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GlobalAveragePooling2D"; }
  bool keepdims() const { return keepdims_; }

 private:
  bool keepdims_;
};

}  // namespace kiln
