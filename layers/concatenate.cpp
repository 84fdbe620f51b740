// Concatenate's join and its entry in the layer registry.
#include "layers/concatenate.h"

#include "core/ops/ops.h"
#include "layers/layer_registry.h"

namespace kiln {

Tensor Concatenate::join(const std::vector<Tensor>& xs) { return concat(xs, axis_); }

// --- model file registration (layers/layer_registry.h) ---

void link_concatenate_layer_type() {}

namespace {
const bool registered = register_layer<Concatenate>(
    "Concatenate", 1, [](const Concatenate& c) { return nlohmann::json{{"axis", c.axis()}}; },
    [](const nlohmann::json& j) { return std::make_shared<Concatenate>(j.at("axis").get<int64_t>()); });
}  // namespace

}  // namespace kiln
