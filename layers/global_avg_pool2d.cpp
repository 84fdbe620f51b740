// GlobalAvgPool2D's forward and its entry in the layer registry.
#include "layers/global_avg_pool2d.h"

#include "layers/layer_registry.h"

namespace kiln {

Tensor GlobalAvgPool2D::forward(const Tensor& x) {
  check_arg(x.dim() == 4, "GlobalAveragePooling2D", "input " + shape_str(x.shape()) + " is not [N,H,W,C]");
  return mean(x, {1, 2}, keepdims_);
}

// --- model file registration (layers/layer_registry.h) ---

void link_global_avg_pool2d_layer_type() {}

namespace {
const bool registered = register_layer<GlobalAvgPool2D>(
    "GlobalAveragePooling2D", 1, [](const GlobalAvgPool2D& p) { return nlohmann::json{{"keepdims", p.keepdims()}}; },
    [](const nlohmann::json& j) { return std::make_shared<GlobalAvgPool2D>(j.at("keepdims").get<bool>()); });
}  // namespace

}  // namespace kiln
