#include "layers/merge.h"

namespace kiln {

std::string shapes_text(const std::vector<Tensor>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + shape_str(xs[i].shape());
  return s;
}

Tensor Merge::forward(const Tensor&) {
  throw std::invalid_argument(type_name() + ": joins two or more inputs and was called with one " +
                              "(use it as a node of a Graph, layers/graph.h)");
}

Tensor Merge::forward_many(const std::vector<Tensor>& xs) {
  check_arg(xs.size() >= 2, "Merge", type_name() + " joins two or more inputs, got " + std::to_string(xs.size()));
  return join(xs);
}

}  // namespace kiln
