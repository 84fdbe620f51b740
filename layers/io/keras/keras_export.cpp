#include "layers/io/keras/keras_export.h"

#include <map>
#include <nlohmann/json.hpp>
#include <typeindex>

#include "core/autograd.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/avg_pool2d.h"
#include "layers/batch_norm2d.h"
#include "layers/concatenate.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/global_avg_pool2d.h"
#include "layers/graph.h"
#include "core/io/h5_io.h"
#include "layers/max_pool2d.h"
#include "layers/io/model_file.h"
#include "layers/layer_registry.h"  // padding_name
#include "layers/permute.h"
#include "layers/reshape.h"
#include "layers/sequential.h"
#include "layers/zero_padding2d.h"

namespace kiln {

using json = nlohmann::json;

namespace {

// A weight as Keras lists it in a layer group: its name there and its values.
struct Weight {
  std::string name;  // "conv2d/kernel:0", relative to the layer's group
  Tensor value;
};

json base(const std::string& name) { return {{"name", name}, {"trainable", true}, {"dtype", "float32"}}; }

json regularizer(float l2) {
  if (l2 <= 0) return nullptr;
  // L1L2 is the regulariser class every Keras 2 and 3 release knows.
  return {{"class_name", "L1L2"}, {"config", {{"l1", 0.0}, {"l2", l2}}}};
}

// One function per kiln layer type: its Keras class name and config. `c` arrives holding the
// name, trainable and dtype entries every Keras layer has.
json export_conv2d(const Module& m, json c) {
  const Conv2DOptions& o = static_cast<const Conv2D&>(m).options();
  c.update({{"filters", o.filters}, {"kernel_size", {o.kernel, o.kernel}}, {"strides", {o.stride, o.stride}},
            {"padding", padding_name(o.padding)}, {"data_format", "channels_last"}, {"dilation_rate", {1, 1}},
            {"activation", activation_name(o.activation)}, {"use_bias", o.use_bias},
            {"kernel_regularizer", regularizer(o.l2)}});
  return {{"class_name", "Conv2D"}, {"config", c}};
}

json export_dense(const Module& m, json c) {
  const DenseOptions& o = static_cast<const Dense&>(m).options();
  c.update({{"units", o.units}, {"activation", activation_name(o.activation)}, {"use_bias", o.use_bias},
            {"kernel_regularizer", regularizer(o.l2)}});
  return {{"class_name", "Dense"}, {"config", c}};
}

json export_batch_norm(const Module& m, json c) {
  const BatchNormOptions& o = static_cast<const BatchNorm2d&>(m).options();
  c.update({{"axis", -1}, {"momentum", o.momentum}, {"epsilon", o.epsilon}, {"center", true}, {"scale", true}});
  return {{"class_name", "BatchNormalization"}, {"config", c}};
}

json export_dropout(const Module& m, json c) {
  c.update({{"rate", static_cast<const Dropout&>(m).rate()}, {"noise_shape", nullptr}, {"seed", nullptr}});
  return {{"class_name", "Dropout"}, {"config", c}};
}

json pool_config(const MaxPool2DOptions& o, json c) {
  c.update({{"pool_size", {o.pool, o.pool}}, {"padding", padding_name(o.padding)},
            {"strides", {o.stride, o.stride}}, {"data_format", "channels_last"}});
  return c;
}

json export_max_pool(const Module& m, json c) {
  return {{"class_name", "MaxPooling2D"}, {"config", pool_config(static_cast<const MaxPool2D&>(m).options(), c)}};
}

json export_avg_pool(const Module& m, json c) {
  return {{"class_name", "AveragePooling2D"}, {"config", pool_config(static_cast<const AvgPool2D&>(m).options(), c)}};
}

json export_flatten(const Module&, json c) {
  c["data_format"] = "channels_last";
  return {{"class_name", "Flatten"}, {"config", c}};
}

json export_reshape(const Module& m, json c) {
  c["target_shape"] = static_cast<const Reshape&>(m).target();
  return {{"class_name", "Reshape"}, {"config", c}};
}

json export_permute(const Module& m, json c) {
  c["dims"] = static_cast<const Permute&>(m).dims();
  return {{"class_name", "Permute"}, {"config", c}};
}

json export_activation(const Module& m, json c) {
  const Activation a = static_cast<const ActivationLayer&>(m).activation();
  if (a == Activation::ReLU) {
    c.update({{"max_value", nullptr}, {"negative_slope", 0.0}, {"threshold", 0.0}});
    return {{"class_name", "ReLU"}, {"config", c}};
  }
  if (a == Activation::Softmax) {
    c["axis"] = -1;
    return {{"class_name", "Softmax"}, {"config", c}};
  }
  c["activation"] = activation_name(a);
  return {{"class_name", "Activation"}, {"config", c}};
}

json export_add(const Module&, json c) { return {{"class_name", "Add"}, {"config", c}}; }

json export_concatenate(const Module& m, json c) {
  // kiln holds what it exports channels-last, so its axis is Keras' axis.
  c["axis"] = static_cast<const Concatenate&>(m).axis();
  return {{"class_name", "Concatenate"}, {"config", c}};
}

json export_global_avg_pool(const Module& m, json c) {
  c.update({{"data_format", "channels_last"}, {"keepdims", static_cast<const GlobalAvgPool2D&>(m).keepdims()}});
  return {{"class_name", "GlobalAveragePooling2D"}, {"config", c}};
}

json export_zero_padding(const Module& m, json c) {
  const ZeroPadding2DOptions& o = static_cast<const ZeroPadding2D&>(m).options();
  c.update({{"padding", {{o.top, o.bottom}, {o.left, o.right}}}, {"data_format", "channels_last"}});
  return {{"class_name", "ZeroPadding2D"}, {"config", c}};
}

struct Exporter {
  const char* keras_classes;  // for the error listing what kiln exports
  json (*to_keras)(const Module& m, json config);
};

const std::map<std::type_index, Exporter>& exporters() {
  static const std::map<std::type_index, Exporter> table = {
      {typeid(Conv2D), {"Conv2D", export_conv2d}},
      {typeid(Dense), {"Dense", export_dense}},
      {typeid(BatchNorm2d), {"BatchNormalization", export_batch_norm}},
      {typeid(Dropout), {"Dropout", export_dropout}},
      {typeid(MaxPool2D), {"MaxPooling2D", export_max_pool}},
      {typeid(AvgPool2D), {"AveragePooling2D", export_avg_pool}},
      {typeid(Flatten), {"Flatten", export_flatten}},
      {typeid(Reshape), {"Reshape", export_reshape}},
      {typeid(Permute), {"Permute", export_permute}},
      {typeid(ActivationLayer), {"Activation/ReLU/Softmax", export_activation}},
      {typeid(Add), {"Add", export_add}},
      {typeid(Concatenate), {"Concatenate", export_concatenate}},
      {typeid(GlobalAvgPool2D), {"GlobalAveragePooling2D", export_global_avg_pool}},
      {typeid(ZeroPadding2D), {"ZeroPadding2D", export_zero_padding}},
  };
  return table;
}

// One layer's Keras config; for a leaf, its weights (parameters then buffers, i.e. Keras'
// trainable then non-trainable order) go to `trainable` / `fixed` named "<prefix><var>:0".
json layer_config(const Module& m, const std::string& name, const std::string& prefix,
                  std::vector<Weight>& trainable, std::vector<Weight>& fixed, const std::string& path) {
  if (auto* s = dynamic_cast<const Sequential*>(&m)) {
    json layers = json::array();
    for (const auto& [child, module] : s->named_children())
      layers.push_back(layer_config(*module, child, prefix + child + "/", trainable, fixed, path));
    return {{"class_name", "Sequential"}, {"config", {{"name", name}, {"layers", layers}}}};
  }
  const auto it = exporters().find(std::type_index(typeid(m)));
  if (it == exporters().end()) {
    std::string known = "Sequential, Graph (at the top)";
    for (const auto& [type, e] : exporters()) known.append(", ").append(e.keras_classes);
    throw FileError(path, "cannot export module '" + name + "' of type " + m.type_name() +
                              " to Keras; kiln exports " + known);
  }
  for (const auto& [var, t] : m.named_parameters()) trainable.push_back({prefix + var + ":0", t});
  for (const auto& [var, t] : m.named_buffers()) fixed.push_back({prefix + var + ":0", t});
  return it->second.to_keras(m, base(name));
}

}  // namespace

void export_keras(const std::string& path, const Module& model, const Shape& input_shape,
                  const std::string& name) {
  // The top level as a list of (name, module): a Sequential's children, a Graph's nodes, or
  // the module itself.
  std::vector<std::pair<std::string, const Module*>> top;
  const auto* graph = dynamic_cast<const Graph*>(&model);
  if (graph != nullptr && graph->input_names().size() != 1)
    throw FileError(path, "cannot export a graph with " + std::to_string(graph->input_names().size()) +
                              " inputs; kiln exports graphs with one input");
  if (auto* s = dynamic_cast<const Sequential*>(&model)) {
    for (const auto& [child, module] : s->named_children()) top.emplace_back(child, module);
  } else if (graph != nullptr) {
    for (const Graph::Node& n : graph->nodes()) top.emplace_back(n.name, n.module.get());
  } else {
    top.emplace_back(name, &model);
  }
  std::string input_name = graph != nullptr ? graph->input_names()[0] : "input_layer";
  for (int i = 1; graph == nullptr; ++i) {
    bool taken = false;
    for (const auto& [n, m] : top) taken |= n == input_name;
    if (!taken) break;
    input_name = "input_layer_" + std::to_string(i);
  }

  json batch_input_shape = json::array({nullptr});
  for (int64_t d : input_shape) batch_input_shape.push_back(d);
  json layers = json::array();
  layers.push_back({{"class_name", "InputLayer"},
                    {"config", {{"batch_input_shape", batch_input_shape}, {"dtype", "float32"},
                                {"sparse", false}, {"name", input_name}}}});
  // A graph is a functional model: every layer names itself and what it reads, in Keras 2's
  // [[[layer, node, tensor, kwargs], ...]] form.
  auto connect = [](json& layer, const std::string& layer_name, const std::vector<std::string>& reads) {
    layer["name"] = layer_name;
    json node = json::array();
    for (const std::string& r : reads) node.push_back({r, 0, 0, json::object()});
    layer["inbound_nodes"] = reads.empty() ? json::array() : json::array({node});
  };
  if (graph != nullptr) connect(layers[0], input_name, {});
  struct Group {
    std::string name;
    std::vector<Weight> weights;
  };
  std::vector<Group> groups;
  for (const auto& [child, module] : top) {
    std::vector<Weight> trainable, fixed;
    // A leaf's weights are named "<layer>/<var>:0"; inside a nested model "<leaf>/<var>:0".
    const bool nested = dynamic_cast<const Sequential*>(module) != nullptr;
    layers.push_back(layer_config(*module, child, nested ? "" : child + "/", trainable, fixed, path));
    if (graph != nullptr) connect(layers.back(), child, graph->nodes()[groups.size()].inputs);
    trainable.insert(trainable.end(), fixed.begin(), fixed.end());
    groups.push_back({child, trainable});
  }
  const json config =
      graph == nullptr
          ? json{{"class_name", "Sequential"}, {"config", {{"name", name}, {"layers", layers}}}}
          : json{{"class_name", "Functional"},
                 {"config", {{"name", name}, {"layers", layers},
                             {"input_layers", json::array({json::array({input_name, 0, 0})})},
                             {"output_layers", json::array({json::array({graph->output_name(), 0, 0})})}}}};

  // Refuse a model that does not run on input_shape rather than write a file Keras rejects.
  check_model_runs(model, input_shape, path);

  h5::write_atomically(path, [&](H5::H5File& f) {
    h5::write_string(f, "keras_version", kKerasExportVersion);
    h5::write_string(f, "backend", "tensorflow");
    h5::write_string(f, "kiln_version", "kiln " KILN_VERSION_STRING);
    h5::write_string(f, "model_config", config.dump());
    H5::Group weights = f.createGroup("model_weights");
    std::vector<std::string> layer_names;
    for (const Group& g : groups) layer_names.push_back(g.name);
    h5::write_string_list(weights, "layer_names", layer_names);
    h5::write_string(weights, "backend", "tensorflow");
    h5::write_string(weights, "keras_version", kKerasExportVersion);
    for (const Group& g : groups) {
      H5::Group lg = weights.createGroup(g.name);
      std::vector<std::string> names;
      for (const Weight& w : g.weights) names.push_back(w.name);
      h5::write_string_list(lg, "weight_names", names);
      for (const Weight& w : g.weights) h5::write_tensor(lg, w.name, w.value);
    }
  });
}

}  // namespace kiln
