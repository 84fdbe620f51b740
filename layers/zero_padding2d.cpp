// ZeroPadding2D's checks and its entry in the layer registry.
#include "layers/zero_padding2d.h"

#include "layers/layer_registry.h"

namespace kiln {

ZeroPadding2D::ZeroPadding2D(const ZeroPadding2DOptions& o) : o_(o) {
  check_arg(o.top >= 0 && o.bottom >= 0 && o.left >= 0 && o.right >= 0, "ZeroPadding2D",
            "padding " + describe() + " must not be negative");
}

std::string ZeroPadding2D::describe() const {
  std::string d = "(";
  d.append(std::to_string(o_.top)).append(",").append(std::to_string(o_.bottom)).append("),(");
  d.append(std::to_string(o_.left)).append(",").append(std::to_string(o_.right)).append(")");
  return d;
}

// --- model file registration (layers/layer_registry.h) ---

void link_zero_padding2d_layer_type() {}

namespace {
const bool registered = register_layer<ZeroPadding2D>(
    "ZeroPadding2D", 1,
    [](const ZeroPadding2D& z) {
      const ZeroPadding2DOptions& o = z.options();
      return nlohmann::json{{"top", o.top}, {"bottom", o.bottom}, {"left", o.left}, {"right", o.right}};
    },
    [](const nlohmann::json& j) {
      return std::make_shared<ZeroPadding2D>(ZeroPadding2DOptions{.top = j.at("top").get<int64_t>(),
                                                                  .bottom = j.at("bottom").get<int64_t>(),
                                                                  .left = j.at("left").get<int64_t>(),
                                                                  .right = j.at("right").get<int64_t>()});
    });
}  // namespace

}  // namespace kiln
