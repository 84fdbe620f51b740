// AvgPool2D's entry in the layer registry: its name and options in kiln's model file.
#include "layers/avg_pool2d.h"

#include "layers/layer_registry.h"

namespace kiln {

// --- model file registration (layers/layer_registry.h) ---

void link_avg_pool2d_layer_type() {}

namespace {
const bool registered = register_layer<AvgPool2D>(
    "AveragePooling2D", 1,
    [](const AvgPool2D& p) {
      return nlohmann::json{{"pool", p.options().pool}, {"stride", p.options().stride},
                            {"padding", padding_name(p.options().padding)}};
    },
    [](const nlohmann::json& j) {
      return std::make_shared<AvgPool2D>(AvgPool2DOptions{.pool = j.at("pool").get<int>(), .stride = j.at("stride").get<int>(),
                                                          .padding = padding_named(j.at("padding").get<std::string>())});
    });
}  // namespace

}  // namespace kiln
