// Add: the element-wise sum of two or more tensors of one shape (Keras' Add), the join of a
// residual connection.
#pragma once

#include "layers/merge.h"

namespace kiln {

class Add : public Merge {
 public:
  std::string type_name() const override { return "Add"; }

 protected:
  Tensor join(const std::vector<Tensor>& xs) override;
};

}  // namespace kiln
