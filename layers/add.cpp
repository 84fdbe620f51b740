// Add's sum and its entry in the layer registry.
#include "layers/add.h"

#include "core/ops/ops.h"
#include "layers/layer_registry.h"

namespace kiln {

Tensor Add::join(const std::vector<Tensor>& xs) {
  for (const Tensor& x : xs)
    check_arg(x.shape() == xs[0].shape(), "Add", "inputs " + shapes_text(xs) + " must all have one shape");
  Tensor y = add(xs[0], xs[1]);
  for (size_t i = 2; i < xs.size(); ++i) y = add(y, xs[i]);
  return y;
}

// --- model file registration (layers/layer_registry.h) ---

void link_add_layer_type() {}

namespace {
const bool registered = register_layer<Add>(
    "Add", 1, [](const Add&) { return nlohmann::json::object(); },
    [](const nlohmann::json&) { return std::make_shared<Add>(); });
}  // namespace

}  // namespace kiln
