// Permute's entry in the layer registry: its name and options in kiln's model file.
#include "layers/permute.h"

#include "layers/layer_registry.h"

namespace kiln {

// --- model file registration (layers/layer_registry.h) ---

void link_permute_layer_type() {}

namespace {
const bool registered = register_layer<Permute>(
    "Permute", 1, [](const Permute& p) { return nlohmann::json{{"dims", p.dims()}}; },
    [](const nlohmann::json& j) { return std::make_shared<Permute>(j.at("dims").get<std::vector<int64_t>>()); });
}  // namespace

}  // namespace kiln
