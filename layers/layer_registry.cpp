#include "layers/layer_registry.h"

#include <map>
#include <mutex>
#include <stdexcept>

namespace kiln {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, LayerType> by_name;
  std::map<std::type_index, std::string> name_of_type;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_layer_type(LayerType t) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.by_name.count(t.name)) throw std::logic_error("register_layer: a layer type '" + t.name + "' is registered already");
  if (r.name_of_type.count(t.cpp_type))
    throw std::logic_error("register_layer: this C++ type is registered already, as '" + r.name_of_type[t.cpp_type] + "'");
  r.name_of_type[t.cpp_type] = t.name;
  const std::string name = t.name;
  r.by_name.emplace(name, std::move(t));
}

const LayerType* find_layer_type(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : &it->second;
}

const LayerType* layer_type_of(const Module& m) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.name_of_type.find(std::type_index(typeid(m)));
  return it == r.name_of_type.end() ? nullptr : &r.by_name.at(it->second);
}

std::string registered_layer_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::string names;
  for (const auto& [name, t] : r.by_name) names.append(names.empty() ? "" : ", ").append(name);
  return names;
}

// One line per built-in layer .cpp (each defines its link_*_layer_type next to its
// registration); a layer added to kiln adds its line here.
void link_activation_layer_type();
void link_add_layer_type();
void link_avg_pool2d_layer_type();
void link_batch_norm2d_layer_type();
void link_concatenate_layer_type();
void link_conv2d_layer_type();
void link_dense_layer_type();
void link_dropout_layer_type();
void link_flatten_layer_type();
void link_global_avg_pool2d_layer_type();
void link_max_pool2d_layer_type();
void link_permute_layer_type();
void link_reshape_layer_type();
void link_zero_padding2d_layer_type();

void link_builtin_layer_types() {
  link_activation_layer_type();
  link_add_layer_type();
  link_avg_pool2d_layer_type();
  link_batch_norm2d_layer_type();
  link_concatenate_layer_type();
  link_conv2d_layer_type();
  link_dense_layer_type();
  link_dropout_layer_type();
  link_flatten_layer_type();
  link_global_avg_pool2d_layer_type();
  link_max_pool2d_layer_type();
  link_permute_layer_type();
  link_reshape_layer_type();
  link_zero_padding2d_layer_type();
}

}  // namespace kiln
