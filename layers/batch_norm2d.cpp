// BatchNorm2d's entry in the layer registry: its name and options in kiln's model file.
#include "layers/batch_norm2d.h"

#include "layers/layer_registry.h"

namespace kiln {

// --- model file registration (layers/layer_registry.h) ---

void link_batch_norm2d_layer_type() {}

namespace {
const bool registered = register_layer<BatchNorm2d>(
    "BatchNormalization", 1,
    [](const BatchNorm2d& b) {
      const BatchNormOptions& o = b.options();
      return nlohmann::json{{"channels", o.channels}, {"momentum", o.momentum}, {"epsilon", o.epsilon}};
    },
    [](const nlohmann::json& j) {
      return std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = j.at("channels").get<int64_t>(),
                                                            .momentum = j.at("momentum").get<float>(),
                                                            .epsilon = j.at("epsilon").get<float>()});
    });
}  // namespace

}  // namespace kiln
