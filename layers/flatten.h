// Flatten: [N, ...] -> [N, prod(...)], in NHWC order (Keras' channels-last order).
#pragma once

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return flatten(x); }
  std::string type_name() const override { return "Flatten"; }
};

}  // namespace kiln
