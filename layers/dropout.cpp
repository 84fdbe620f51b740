// Dropout's entry in the layer registry: its name and options in kiln's model file.
#include "layers/dropout.h"

#include "layers/layer_registry.h"

namespace kiln {

// --- model file registration (layers/layer_registry.h) ---

void link_dropout_layer_type() {}

namespace {
const bool registered = register_layer<Dropout>(
    "Dropout", 1, [](const Dropout& d) { return nlohmann::json{{"rate", d.rate()}}; },
    [](const nlohmann::json& j) { return std::make_shared<Dropout>(j.at("rate").get<float>()); });
}  // namespace

}  // namespace kiln
