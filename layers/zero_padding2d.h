// ZeroPadding2D: rows and columns of zeros around each image (Keras' ZeroPadding2D), e.g.
// before a stride-2 "valid" convolution in a ResNet stem.
#pragma once

#include <cstdint>

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

struct ZeroPadding2DOptions {
  int64_t top = 1, bottom = 1, left = 1, right = 1;
};

class ZeroPadding2D : public Module {
 public:
  explicit ZeroPadding2D(const ZeroPadding2DOptions& o = {});
  Tensor forward(const Tensor& x) override { return zero_pad2d(x, o_.top, o_.bottom, o_.left, o_.right); }
  std::string type_name() const override { return "ZeroPadding2D"; }
  std::string describe() const override;
  const ZeroPadding2DOptions& options() const { return o_; }

 private:
  ZeroPadding2DOptions o_;
};

}  // namespace kiln
