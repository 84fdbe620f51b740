// The layer registry: every module type that kiln's model file can hold says, in its own .cpp,
// what it is called in the file, which version its config is at, how to write its options as
// JSON and how to build a fresh module from them. save_model and load_model walk the registry;
// nothing else lists the layer types.
//
// A module of your own (say a residual block, built from registered layers in its
// constructor) becomes saveable with one call, anywhere before it is saved or loaded:
//
//   static const bool registered = register_layer<ResidualBlock>(
//       "ResidualBlock", 1,
//       [](const ResidualBlock& b) { return nlohmann::json{{"channels", b.channels()}}; },
//       [](const nlohmann::json& j) { return std::make_shared<ResidualBlock>(j.at("channels").get<int64_t>()); });
//
// Its parameters and buffers (its children's included) are saved by their dotted names, so
// build() must create the same children under the same names. A config with another version
// than the registered one is refused on load, naming the layer and both versions.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <typeindex>
#include <vector>

#include "core/ops/ops.h"  // Padding
#include "layers/module.h"

namespace kiln {

struct LayerType {
  std::string name;  // the "type" in the model file: "Conv2D"
  int version = 1;   // of the config this kiln writes and reads
  std::type_index cpp_type = typeid(void);
  std::function<nlohmann::json(const Module&)> write_config;                // options -> JSON
  std::function<std::shared_ptr<Module>(const nlohmann::json&)> build;      // JSON -> a fresh module
};

// Adds t; std::logic_error if its name or C++ type is registered already.
void register_layer_type(LayerType t);
// The type registered under name, or null.
const LayerType* find_layer_type(const std::string& name);
// The type registered for m's dynamic C++ type, or null.
const LayerType* layer_type_of(const Module& m);
// "Activation, AveragePooling2D, ...": every registered name, sorted.
std::string registered_layer_names();

template <class M>
bool register_layer(const std::string& name, int version, std::function<nlohmann::json(const M&)> write_config,
                    std::function<std::shared_ptr<M>(const nlohmann::json&)> build) {
  register_layer_type({name, version, typeid(M),
                       [write_config](const Module& m) { return write_config(static_cast<const M&>(m)); },
                       [build](const nlohmann::json& j) -> std::shared_ptr<Module> { return build(j); }});
  return true;
}

// "same" / "valid", as the model file writes a padding.
inline std::string padding_name(Padding p) { return p == Padding::Same ? "same" : "valid"; }
inline Padding padding_named(const std::string& name) { return name == "same" ? Padding::Same : Padding::Valid; }

// Makes sure every built-in layer's registration is linked in (layer_registry.cpp): a static
// library leaves out an object file nothing refers to, and a layer's .cpp may hold nothing
// but its registration. save_model and load_model call it.
void link_builtin_layer_types();

}  // namespace kiln
