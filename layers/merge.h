// Merge: the base of layers that join two or more tensors into one (Add, Concatenate). They
// live in graph models (layers/graph.h), where a node hands them its inputs; called with a
// single tensor they refuse, naming the layer.
#pragma once

#include <string>
#include <vector>

#include "layers/module.h"

namespace kiln {

class Merge : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor forward_many(const std::vector<Tensor>& xs) override;
  bool joins_inputs() const override { return true; }

 protected:
  // xs has two or more tensors.
  virtual Tensor join(const std::vector<Tensor>& xs) = 0;
};

// "(1, 4, 4, 8), (1, 4, 4, 4)": the shapes of a merge's inputs, for its error messages.
std::string shapes_text(const std::vector<Tensor>& xs);

}  // namespace kiln
