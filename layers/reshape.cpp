// Reshape's entry in the layer registry: its name and options in kiln's model file.
#include "layers/reshape.h"

#include "layers/layer_registry.h"

namespace kiln {

// --- model file registration (layers/layer_registry.h) ---

void link_reshape_layer_type() {}

namespace {
const bool registered = register_layer<Reshape>(
    "Reshape", 1, [](const Reshape& r) { return nlohmann::json{{"target", r.target()}}; },
    [](const nlohmann::json& j) { return std::make_shared<Reshape>(j.at("target").get<Shape>()); });
}  // namespace

}  // namespace kiln
