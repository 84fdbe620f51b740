// Flatten's entry in the layer registry: its name and options in kiln's model file.
#include "layers/flatten.h"

#include "layers/layer_registry.h"

namespace kiln {

// --- model file registration (layers/layer_registry.h) ---

void link_flatten_layer_type() {}

namespace {
const bool registered = register_layer<Flatten>(
    "Flatten", 1, [](const Flatten&) { return nlohmann::json::object(); },
    [](const nlohmann::json&) { return std::make_shared<Flatten>(); });
}  // namespace

}  // namespace kiln
