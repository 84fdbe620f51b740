#include "layers/io/keras/keras_import.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <queue>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/io/h5_io.h"
#include "core/io/zip_archive.h"
#include "layers/graph.h"
#include "layers/permute.h"
#include "layers/io/keras/keras_config.h"

namespace kiln {

using json = nlohmann::json;

using keras::Built;
using keras::Flow;
using keras::Slot;
using keras::Where;
using keras::tuple_str;
using keras::lower;

namespace {

// Keras' naming.to_snake_case, which names the variable groups in .keras files:
// "Conv2D" -> "conv2d", "MaxPooling2D" -> "max_pooling2d", "ReLU" -> "re_lu".
std::string keras_snake_case(const std::string& name) {
  std::string s;
  for (char c : name)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') s += c;  // drop \W
  auto upper = [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; };
  auto low = [](char c) { return std::islower(static_cast<unsigned char>(c)) != 0; };
  // (.)([A-Z][a-z]+) -> \1_\2, left to right without overlapping matches.
  std::string a;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && upper(s[i]) && i + 1 < s.size() && low(s[i + 1])) {
      a += '_';
      a += s[i];
      while (i + 1 < s.size() && low(s[i + 1])) a += s[++i];
      // The consumed word can also end a match's (.) for the next one: nothing to do, the
      // next iteration sees s[i+1] with a preceding character.
      continue;
    }
    a += s[i];
  }
  // ([a-z])([A-Z]) -> \1_\2, then lower case.
  std::string b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && low(a[i - 1]) && upper(a[i])) b += '_';
    b += a[i];
  }
  return lower(b);
}

// The tensor between two layers as the importer tracks it.
class Importer {
 public:
  explicit Importer(std::string path) : reader_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& message) const { reader_.fail(message); }

  // Builds the whole model from its config; returns the kiln model and fills input_shape: a
  // Sequential, or a Graph for a functional model that is not one chain.
  std::shared_ptr<Module> build(const json& model_config, Shape& input_shape, std::string& name,
                                Built& root) {
    if (!model_config.is_object() || !model_config.contains("class_name"))
      fail("the model config is not a Keras model (no class_name)");
    const std::string cls = model_config["class_name"].get<std::string>();
    if (!is_model_class(cls))
      fail("the model is a '" + cls + "'; kiln imports Sequential and functional (Model) models");
    const json& cfg = model_config.contains("config") ? model_config["config"] : keras::empty_object();
    name = model_name(cfg, cls);
    auto seq = std::make_shared<Sequential>();
    root.name = name;
    root.class_name = cls;
    root.is_model = true;
    Flow in;
    in.shape = model_input_shape(model_config);
    input_shape = in.shape;
    Flow out = build_model(cls, cfg, *seq, in, root, /*top=*/true);
    // The model's output in Keras' axis order.
    keras::BuildContext(reader_, *seq, reserved_).to_keras_order(out);
    // A functional graph alone is the model itself, its parameters named after its layers.
    if (seq->size() == 1)
      if (auto g = std::dynamic_pointer_cast<Graph>(seq->layers()[0])) return g;
    return seq;
  }

 private:
  static bool is_model_class(const std::string& c) {
    return c == "Sequential" || c == "Functional" || c == "Model";
  }

  std::string model_name(const json& cfg, const std::string& cls) const {
    if (cfg.is_object() && cfg.contains("name") && cfg["name"].is_string()) return cfg["name"];
    return cls == "Sequential" ? "sequential" : "model";
  }

  // --- config access, with errors that name the layer and option --------------------------

  static const json& layers_of(const json& cfg) {
    static const json none = json::array();
    if (cfg.is_array()) return cfg;  // Keras 2.0/2.1 Sequential: the config is the layer list
    if (cfg.is_object() && cfg.contains("layers") && cfg["layers"].is_array()) return cfg["layers"];
    return none;
  }

  static const json* find_batch_shape(const json& layer_cfg) {
    for (const char* key : {"batch_shape", "batch_input_shape"})
      if (layer_cfg.is_object() && layer_cfg.contains(key) && !layer_cfg[key].is_null()) return &layer_cfg[key];
    return nullptr;
  }

  // Where the config states the model's input shape, in the order Keras versions used.
  Shape model_input_shape(const json& model_config) const {
    const std::string cls = model_config["class_name"];
    const json& cfg = model_config.contains("config") ? model_config["config"] : keras::empty_object();
    const json& layers = layers_of(cfg);
    if (cls == "Sequential") {
      if (!layers.empty()) {
        const json& first = layers[0];
        const json& fcfg = first.contains("config") ? first["config"] : keras::empty_object();
        if (const json* b = find_batch_shape(fcfg)) return reader_.example_shape(*b, "the input shape");
        if (fcfg.is_object() && fcfg.contains("input_shape") && fcfg["input_shape"].is_array()) {
          json b = json::array({nullptr});
          for (const json& d : fcfg["input_shape"]) b.push_back(d);
          return reader_.example_shape(b, "the input shape");
        }
      }
      if (cfg.is_object() && cfg.contains("build_input_shape") && !cfg["build_input_shape"].is_null())
        return reader_.example_shape(cfg["build_input_shape"], "the model's build_input_shape");
      if (!layers.empty() && layers[0].contains("build_config") &&
          layers[0]["build_config"].contains("input_shape"))
        return reader_.example_shape(layers[0]["build_config"]["input_shape"], "the first layer's input shape");
      fail("the Sequential model's config states no input shape (no InputLayer, batch_input_shape "
           "or build_input_shape); kiln needs one to build the layers");
    }
    // Functional: its single InputLayer.
    const std::string input = single_endpoint(cfg, "input_layers");
    for (const json& l : layers)
      if (layer_name(l) == input) {
        const json& lcfg = l.contains("config") ? l["config"] : keras::empty_object();
        if (const json* b = find_batch_shape(lcfg)) return reader_.example_shape(*b, "the input shape");
      }
    fail("the functional model's input layer '" + input + "' states no batch_shape");
  }

  static std::string layer_name(const json& layer) {
    if (layer.contains("name") && layer["name"].is_string()) return layer["name"];
    if (layer.contains("config") && layer["config"].is_object() && layer["config"].contains("name"))
      return layer["config"]["name"];
    return "";
  }

  // input_layers / output_layers: [[name, node, tensor], ...] or, for one, [name, node, tensor].
  std::string single_endpoint(const json& cfg, const char* key) const {
    if (!cfg.is_object() || !cfg.contains(key)) fail(std::string("the functional model has no ") + key);
    const json& v = cfg[key];
    std::vector<std::string> names;
    if (v.is_array() && !v.empty() && v[0].is_string()) {
      names.push_back(v[0]);
    } else if (v.is_array()) {
      for (const json& e : v)
        if (e.is_array() && !e.empty() && e[0].is_string()) names.push_back(e[0]);
    } else if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it)
        if (it->is_array() && !it->empty() && (*it)[0].is_string()) names.push_back((*it)[0]);
    }
    if (names.size() != 1)
      fail("the functional model has " + std::to_string(names.size()) + " " + key +
           "; kiln imports models with one input and one output");
    return names[0];
  }

  // The layers feeding each call (node) of a functional layer, in both config dialects:
  // Keras 2 [[[name, node, tensor, kwargs], ...], ...]; Keras 3 [{"args": [...], "kwargs": {...}}]
  // with tensors as {"class_name": "__keras_tensor__", "config": {"keras_history": [name, ...]}}.
  // Walked with an explicit stack, in document order: a damaged or hostile config may nest
  // deeper than the call stack allows.
  static void collect_history(const json& root, std::vector<std::string>& out) {
    std::vector<const json*> todo = {&root};
    while (!todo.empty()) {
      const json& v = *todo.back();
      todo.pop_back();
      if (v.is_object() && v.value("class_name", "") == "__keras_tensor__" && v.contains("config") &&
          v["config"].contains("keras_history") && v["config"]["keras_history"].is_array() &&
          !v["config"]["keras_history"].empty()) {
        if (v["config"]["keras_history"][0].is_string()) out.push_back(v["config"]["keras_history"][0]);
        continue;
      }
      if (!v.is_object() && !v.is_array()) continue;
      const size_t first = todo.size();
      for (auto it = v.begin(); it != v.end(); ++it) todo.push_back(&*it);
      std::reverse(todo.begin() + static_cast<std::ptrdiff_t>(first), todo.end());
    }
  }
  static std::vector<std::vector<std::string>> inbound(const json& layer) {
    std::vector<std::vector<std::string>> nodes;
    if (!layer.contains("inbound_nodes") || !layer["inbound_nodes"].is_array()) return nodes;
    for (const json& node : layer["inbound_nodes"]) {
      std::vector<std::string> names;
      if (node.is_object()) {
        collect_history(node, names);
      } else if (node.is_array() && !node.empty() && node[0].is_string()) {
        names.push_back(node[0]);  // a node written as one bare [name, node, tensor, kwargs]
      } else if (node.is_array()) {
        for (const json& t : node)
          if (t.is_array() && !t.empty() && t[0].is_string()) names.push_back(t[0]);
      }
      nodes.push_back(names);
    }
    return nodes;
  }

  // True when every layer but the inputs is called once on one tensor and no tensor feeds two
  // layers: the config is then at most one chain (functional_chain checks the rest).
  static bool is_chain(const json& cfg) {
    std::set<std::string> read;
    for (const json& l : layers_of(cfg)) {
      if (l.value("class_name", "") == "InputLayer") continue;
      const auto nodes = inbound(l);
      if (nodes.size() != 1 || nodes[0].size() != 1 || !read.insert(nodes[0][0]).second) return false;
    }
    return true;
  }

  // A functional config that is not one chain, as a Graph: one node per Keras layer (its
  // kiln layers, or a Sequential of them when the axis bookkeeping adds Permutes), run in an
  // order where every layer comes after what it reads. Shared layers (called more than
  // once), models with several inputs or outputs, cycles and dangling references are
  // refused, naming the layer.
  Flow build_graph(const json& cfg, Graph& g, Flow in, Built& built) {
    const json& layers = layers_of(cfg);
    const std::string model = built.name;
    const std::string input = single_endpoint(cfg, "input_layers");
    const std::string output = single_endpoint(cfg, "output_layers");
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < layers.size(); ++i)
      if (!index.emplace(layer_name(layers[i]), i).second)
        fail("the functional model '" + model + "' has two layers named '" + layer_name(layers[i]) + "'");
    if (!index.count(input)) fail("the functional model '" + model + "' has no input layer '" + input + "'");
    if (!index.count(output)) fail("the functional model '" + model + "' has no output layer '" + output + "'");
    // What each layer reads, and the layers waiting on each.
    std::vector<std::vector<size_t>> reads(layers.size()), readers(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string name = layer_name(layers[i]);
      const auto nodes = inbound(layers[i]);
      if (name == input) {
        if (!nodes.empty() && !(nodes.size() == 1 && nodes[0].empty()))
          fail("the functional model '" + model + "': its input layer '" + name + "' reads other layers");
        continue;
      }
      if (nodes.size() != 1)
        fail("the functional model '" + model + "': layer '" + name + "' is called " + std::to_string(nodes.size()) +
             " times (a shared layer); kiln imports each layer called once");
      if (nodes[0].empty())
        fail("the functional model '" + model + "': layer '" + name + "' reads nothing (a second input?); kiln " +
             "imports models with one input");
      for (const std::string& from : nodes[0]) {
        const auto it = index.find(from);
        if (it == index.end())
          fail("the functional model '" + model + "': layer '" + name + "' reads a layer '" + from + "' it does not define");
        reads[i].push_back(it->second);
        readers[it->second].push_back(i);
      }
    }
    // Kahn's order, the config's order among the ready layers (Keras writes them in an order
    // that runs, so for its files this is the config's own order).
    std::vector<size_t> waiting(layers.size());
    std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
    for (size_t i = 0; i < layers.size(); ++i) {
      waiting[i] = reads[i].size();
      if (waiting[i] == 0) ready.push(i);
    }
    std::vector<size_t> order;
    while (!ready.empty()) {
      const size_t i = ready.top();
      ready.pop();
      order.push_back(i);
      for (size_t r : readers[i])
        if (--waiting[r] == 0) ready.push(r);
    }
    if (order.size() != layers.size())
      for (size_t i = 0; i < layers.size(); ++i)
        if (waiting[i] > 0)
          fail("the functional model '" + model + "': layer '" + layer_name(layers[i]) +
               "' is on a cycle or reads one; a model's layers must not form a cycle");

    std::vector<Built> children(layers.size());
    std::vector<Flow> flows(layers.size());
    std::vector<std::string> value(layers.size());  // the graph value that holds each layer's output
    for (size_t i : order) {
      const json& layer = layers[i];
      const std::string name = layer_name(layer);
      Built& b = children[i];
      if (name == input) {
        Sequential unused;
        flows[i] = build_layer(layer, unused, in, b, true);
        if (layer.value("class_name", "") != "InputLayer")
          fail("the functional model '" + model + "': its input '" + name + "' is a " + b.class_name +
               ", not an InputLayer");
        g.input(name);
        value[i] = name;
        continue;
      }
      if (reads[i].empty()) fail("the functional model '" + model + "': layer '" + name + "' reads nothing");
      const std::string cls = layer.contains("class_name") && layer["class_name"].is_string() ? layer["class_name"].get<std::string>() : "";
      if (const keras::MergeImporter merge = keras::merge_importer(cls)) {
        b.class_name = cls;
        b.name = name;
        const json& lcfg = layer.contains("config") ? layer["config"] : keras::empty_object();
        b.trainable = reader_.get_bool(lcfg, "trainable", true, keras::Where{cls, name});
        // The inputs in one axis order: channels-first images held as (H, W, C) go back to
        // Keras' order unless every input is held so.
        std::vector<Flow> ins;
        std::vector<std::string> from;
        bool all_held = true;
        for (size_t k : reads[i]) all_held = all_held && flows[k].held_nhwc;
        for (size_t k : reads[i]) {
          Flow f = flows[k];
          std::string v = value[k];
          if (f.held_nhwc && !all_held) {
            const std::string permuted = v + "_to_channels_first";
            if (std::none_of(g.nodes().begin(), g.nodes().end(), [&](const Graph::Node& n) { return n.name == permuted; }))
              g.add(permuted, std::make_shared<Permute>(std::vector<int64_t>{3, 1, 2}), {v});
            f.held_nhwc = false;
            v = permuted;
          }
          ins.push_back(f);
          from.push_back(v);
        }
        g.add(name, merge(reader_, lcfg, keras::Where{cls, name}, ins, flows[i]), from);
        value[i] = name;
        continue;
      }
      if (reads[i].size() != 1)
        fail("the functional model '" + model + "': layer '" + name + "' (" + cls + ") is called on " +
             std::to_string(reads[i].size()) + " inputs; kiln joins inputs with " + "Add and Concatenate only");
      auto node = std::make_shared<Sequential>();
      flows[i] = build_layer(layer, *node, flows[reads[i][0]], b, false);
      // One kiln layer is the node itself; none (an identity) or several stay a Sequential.
      std::shared_ptr<Module> module = node;
      if (node->size() == 1) module = node->layers()[0];
      g.add(name, module, {value[reads[i][0]]});
      value[i] = name;
    }
    g.output(output);
    for (Built& b : children) built.children.push_back(std::move(b));
    return flows[index.at(output)];
  }

  // The layers of a functional config in the order they run, if they form one chain from the
  // input to the output; otherwise a clear error.
  std::vector<const json*> functional_chain(const json& cfg, const std::string& model) const {
    const json& layers = layers_of(cfg);
    std::map<std::string, const json*> by_name;
    for (const json& l : layers) by_name[layer_name(l)] = &l;
    const std::string input = single_endpoint(cfg, "input_layers");
    const std::string output = single_endpoint(cfg, "output_layers");
    const std::string not_chain = "the functional model '" + model + "' is not a single chain of layers: ";
    std::vector<const json*> chain;
    std::string at = output;
    while (true) {
      auto it = by_name.find(at);
      if (it == by_name.end()) fail(not_chain + "it refers to a layer '" + at + "' it does not define");
      chain.push_back(it->second);
      if (at == input) break;
      const auto nodes = inbound(*it->second);
      if (nodes.size() != 1)
        fail(not_chain + "layer '" + at + "' is called " + std::to_string(nodes.size()) +
             " times (a shared layer); kiln imports one chain from input to output");
      if (nodes[0].size() != 1)
        fail(not_chain + "layer '" + at + "' takes " + std::to_string(nodes[0].size()) +
             " inputs; kiln imports one chain from input to output");
      at = nodes[0][0];
      if (chain.size() > layers.size()) fail(not_chain + "its layers form a cycle");
    }
    if (chain.size() != layers.size()) {
      std::set<const json*> used(chain.begin(), chain.end());
      for (const json& l : layers)
        if (!used.count(&l))
          fail(not_chain + "layer '" + layer_name(l) + "' is not on the path from '" + input +
               "' to '" + output + "'; kiln imports one chain from input to output");
    }
    std::reverse(chain.begin(), chain.end());
    return chain;
  }

  // --- models ----------------------------------------------------------------------------

  // Builds a Sequential or functional config into seq, starting from `in`.
  Flow build_model(const std::string& cls, const json& cfg, Sequential& seq, Flow in, Built& built, bool top) {
    struct Depth {
      int& depth;
      explicit Depth(int& d) : depth(++d) {}
      ~Depth() { --depth; }
    } depth(model_depth_);
    if (model_depth_ > kMaxModelDepth)
      fail("the config nests models more than " + std::to_string(kMaxModelDepth) + " deep (at '" + built.name +
           "'); kiln refuses deeper nesting");
    built.is_model = true;
    built.is_functional = cls != "Sequential";
    std::vector<const json*> order;
    if (cls == "Sequential") {
      for (const json& l : layers_of(cfg)) order.push_back(&l);
    } else if (is_chain(cfg)) {
      order = functional_chain(cfg, built.name);
    } else {
      std::set<std::string> saved = reserved_;
      for (const json& l : layers_of(cfg)) reserved_.insert(layer_name(l));
      auto g = std::make_shared<Graph>();
      const Flow out = build_graph(cfg, *g, in, built);
      reserved_ = saved;
      seq.add(g, built.name);
      return out;
    }
    // Keep the names Keras gave its layers free for them; the importer's own Permutes take others.
    std::set<std::string> saved = reserved_;
    for (const json* l : order) reserved_.insert(layer_name(*l));
    Flow f = in;
    for (size_t i = 0; i < order.size(); ++i) {
      Built b;
      f = build_layer(*order[i], seq, f, b, top && i == 0);
      built.children.push_back(std::move(b));
    }
    reserved_ = saved;
    return f;
  }

  Flow build_layer(const json& layer, Sequential& seq, Flow f, Built& b, bool first_of_model) {
    if (!layer.is_object() || !layer.contains("class_name") || !layer["class_name"].is_string())
      fail("a layer entry of the model config has no class_name: " + layer.dump().substr(0, 200));
    const std::string cls = layer["class_name"];
    const json& cfg = layer.contains("config") ? layer["config"] : keras::empty_object();
    b.class_name = cls;
    b.name = layer_name(layer);
    const Where w{cls, b.name};
    b.trainable = reader_.get_bool(cfg, "trainable", true, w);
    const Shape& s = f.shape;

    if (cls == "InputLayer") {
      const json* bs = find_batch_shape(cfg);
      if (!bs) fail(w.str() + " states no batch_shape");
      const Shape declared = reader_.example_shape(*bs, w.str() + " shape");
      if (!first_of_model && declared != s)
        fail(w.str() + " declares input " + tuple_str(declared) + " but receives " + tuple_str(s));
      return f;
    }

    if (is_model_class(cls)) {
      auto inner = std::make_shared<Sequential>();
      Flow out = build_model(cls, cfg, *inner, f, b, false);
      seq.add(inner, b.name);
      return out;
    }

    if (const keras::LayerImporter import_layer = keras::layer_importer(cls)) {
      keras::BuildContext c(reader_, seq, reserved_);
      return import_layer(c, cfg, w, f, b);
    }

    fail("layer '" + b.name + "' is a " + cls + ", which kiln cannot import; kiln supports InputLayer, " +
         keras::importable_classes() + ", and Sequential or functional models of these");
  }

  keras::ConfigReader reader_;
  std::set<std::string> reserved_;
  // Models inside models: each level is a recursion of build_model (and of the weight loaders
  // and the model's own walks later), so the depth is bounded far above any real model.
  static constexpr int kMaxModelDepth = 64;
  int model_depth_ = 0;  // Keras layer names of the model being built
};

// --- weights -------------------------------------------------------------------------------

// "conv2d_1/kernel:0" -> "kernel"; "kernel" -> "kernel".
std::string var_of(const std::string& weight_name) {
  std::string v = weight_name.substr(weight_name.rfind('/') == std::string::npos ? 0 : weight_name.rfind('/') + 1);
  const auto colon = v.rfind(':');
  if (colon != std::string::npos) v = v.substr(0, colon);
  return v;
}
// "block/conv2d/kernel:0" -> "conv2d"; "kernel" -> "".
std::string owner_of(const std::string& weight_name) {
  const auto slash = weight_name.rfind('/');
  if (slash == std::string::npos) return "";
  const std::string head = weight_name.substr(0, slash);
  return head.substr(head.rfind('/') == std::string::npos ? 0 : head.rfind('/') + 1);
}

struct NamedSlot {
  std::string layer;  // the leaf layer that owns it
  Slot slot;
};

// Keras' legacy order of a layer's weights (trainable_weights + non_trainable_weights,
// recursively, with frozen layers' weights all counted non-trainable).
void trainable_part(const Built& b, std::vector<NamedSlot>& out);
void non_trainable_part(const Built& b, std::vector<NamedSlot>& out);
void all_weights(const Built& b, std::vector<NamedSlot>& out) {
  trainable_part(b, out);
  non_trainable_part(b, out);
}
void trainable_part(const Built& b, std::vector<NamedSlot>& out) {
  if (!b.trainable) return;
  if (b.is_model) {
    for (const Built& c : b.children) trainable_part(c, out);
    return;
  }
  for (const Slot& s : b.slots)
    if (s.trainable) out.push_back({b.name, s});
}
void non_trainable_part(const Built& b, std::vector<NamedSlot>& out) {
  if (b.is_model) {
    for (const Built& c : b.children) b.trainable ? non_trainable_part(c, out) : all_weights(c, out);
    return;
  }
  for (const Slot& s : b.slots)
    if (!b.trainable || !s.trainable) out.push_back({b.name, s});
}

std::string slot_list(const std::vector<NamedSlot>& slots) {
  std::string s;
  for (size_t i = 0; i < slots.size(); ++i) s += (i ? ", " : "") + slots[i].slot.var;
  return s.empty() ? "none" : s;
}

void assign(const std::string& path, const std::string& layer, const std::string& var, Tensor& target,
            const Tensor& value) {
  if (value.shape() != target.shape())
    throw FileError(path, "layer '" + layer + "' weight '" + var + "' has shape " + shape_str(value.shape()) +
                                   " in the file; the layer built from the config needs " +
                                   shape_str(target.shape()));
  target.copy_(value);
}

// Legacy HDF5: group model_weights/<layer> lists its datasets in `weight_names`.
void load_h5_weights(const std::string& path, const H5::Group& weights, const Built& root) {
  for (const Built& layer : root.children) {
    std::vector<NamedSlot> expected;
    all_weights(layer, expected);
    if (expected.empty()) continue;
    if (!weights.nameExists(layer.name))
      throw FileError(path, "no weights for layer '" + layer.name + "' (group model_weights/" + layer.name +
                                     " is missing)");
    const H5::Group g = weights.openGroup(layer.name);
    const std::vector<std::string> names = h5::read_string_list(g, "weight_names", path);
    if (names.size() != expected.size())
      throw FileError(path, "layer '" + layer.name + "' has " + std::to_string(names.size()) +
                                     " weights in the file (model_weights/" + layer.name +
                                     "), kiln expects " + std::to_string(expected.size()) + " (" +
                                     slot_list(expected) + ")");
    // Keras loads by position; the names confirm the position where they carry one.
    std::vector<const NamedSlot*> match(names.size(), nullptr);
    bool by_position = true;
    for (size_t i = 0; i < names.size(); ++i)
      if (var_of(names[i]) != expected[i].slot.var) by_position = false;
    for (size_t i = 0; i < names.size(); ++i) {
      if (by_position) {
        match[i] = &expected[i];
        continue;
      }
      // Names out of the legacy order: pair each with the slot of its layer and variable.
      for (const NamedSlot& e : expected) {
        const std::string owner = owner_of(names[i]);
        if (e.slot.var == var_of(names[i]) && (!layer.is_model || owner == e.layer)) {
          if (match[i]) throw FileError(path, "layer '" + layer.name + "': weight '" + names[i] +
                                                       "' matches more than one of kiln's weights");
          match[i] = &e;
        }
      }
      if (!match[i])
        throw FileError(path, "layer '" + layer.name + "': weight '" + names[i] + "' matches none of " +
                                       slot_list(expected));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (!g.nameExists(names[i]))
        throw FileError(path, "layer '" + layer.name + "': weight_names lists '" + names[i] +
                                       "' but model_weights/" + layer.name + " has no such dataset");
      const Tensor value = h5::read_tensor(g.openDataSet(names[i]), path, "layer '" + layer.name + "' weight '" + names[i] + "'");
      assign(path, match[i]->layer, match[i]->slot.var, *match[i]->slot.target, value);
    }
  }
}

// .keras: a container's layers are stored under <prefix>/<snake_case class>[_<k>], each
// leaf's variables at .../vars/0, 1, ... in creation order.
void load_zip_weights(const std::string& label, const H5::Group& file, const std::string& prefix,
                      const Built& model) {
  std::map<std::string, int> used;
  for (const Built& c : model.children) {
    // A Sequential's `layers` leaves out its InputLayer; a functional model's keeps it.
    if (c.class_name == "InputLayer" && !model.is_functional) continue;
    std::string name = keras_snake_case(c.class_name);
    auto it = used.find(name);
    if (it == used.end()) {
      used[name] = 0;
    } else {
      name += "_" + std::to_string(++it->second);
    }
    const std::string at = prefix + "/" + name;
    if (c.is_model) {
      load_zip_weights(label, file, at + "/" + prefix.substr(prefix.rfind('/') + 1), c);
      continue;
    }
    if (c.slots.empty()) continue;
    const std::string vars = at + "/vars";
    if (!file.nameExists(at) || !file.nameExists(vars))
      throw FileError(label, "no weights for layer '" + c.name + "' (" + c.class_name + "): group " + vars +
                                      " is missing");
    const H5::Group g = file.openGroup(vars);
    if (g.getNumObjs() != c.slots.size())
      throw FileError(label, "layer '" + c.name + "' has " + std::to_string(g.getNumObjs()) +
                                      " variables in " + vars + ", kiln expects " + std::to_string(c.slots.size()));
    for (size_t i = 0; i < c.slots.size(); ++i) {
      const std::string key = std::to_string(i);
      if (!g.nameExists(key))
        throw FileError(label, "layer '" + c.name + "': " + vars + " has no variable " + key);
      const Tensor value = h5::read_tensor(g.openDataSet(key), label, "layer '" + c.name + "' variable " + key);
      assign(label, c.name, c.slots[i].var, *c.slots[i].target, value);
    }
  }
}

json parse_config(const std::string& path, const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw FileError(path, what + " is not valid JSON: " + e.what());
  }
}

LoadedModel import_h5(const std::string& path) {
  try {
    H5::H5File f = h5::open_file(path);
    if (!h5::has_attr(f, "model_config")) {
      if (h5::has_attr(f, "layer_names"))
        throw FileError(path, "holds only weights (model.save_weights); kiln needs the architecture too: "
                                   "save the model with model.save()");
      throw FileError(path, "not a Keras model file: it has no 'model_config' attribute (and is not a "
                                 "kiln model file: no 'kiln_format' attribute)");
    }
    LoadedModel m;
    m.format = "keras-h5";
    m.keras_version = h5::has_attr(f, "keras_version") ? h5::read_string(f, "keras_version", path) : "";
    if (m.keras_version.empty() || m.keras_version[0] == '1')
      throw FileError(path, "written by Keras " + (m.keras_version.empty() ? std::string("1.x (no keras_version)") : m.keras_version) +
                                     "; kiln reads files of Keras 2 and 3");
    const std::string backend = h5::has_attr(f, "backend") ? h5::read_string(f, "backend", path) : "";
    if (backend == "theano")
      throw FileError(path, "written with the theano backend, whose convolution kernels are flipped "
                                 "relative to TensorFlow's; kiln reads files of the tensorflow, jax, torch and "
                                 "numpy backends");
    const json config = parse_config(path, h5::read_string(f, "model_config", path), "the model_config attribute");
    Importer importer(path);
    Built root;
    m.model = importer.build(config, m.input_shape, m.name, root);
    if (!f.nameExists("model_weights"))
      throw FileError(path, "has a model_config but no model_weights group");
    load_h5_weights(path, f.openGroup("model_weights"), root);
    m.model->eval();
    return m;
  } catch (const H5::Exception& e) {
    throw h5::damaged_file(path, e);
  }
}

LoadedModel import_zip(const std::string& path) {
  const ZipArchive zip(path);
  if (!zip.contains("config.json"))
    throw FileError(path, "a zip archive without config.json: not a Keras .keras file");
  LoadedModel m;
  m.format = "keras-zip";
  if (zip.contains("metadata.json")) {
    const std::vector<char> meta = zip.read("metadata.json");
    const json j = parse_config(path, std::string(meta.begin(), meta.end()), "metadata.json");
    m.keras_version = j.value("keras_version", "");
  }
  const std::vector<char> cfg = zip.read("config.json");
  const json config = parse_config(path, std::string(cfg.begin(), cfg.end()), "config.json");
  Importer importer(path);
  Built root;
  m.model = importer.build(config, m.input_shape, m.name, root);
  if (!zip.contains("model.weights.h5")) {
    if (zip.contains("model.weights.npz"))
      throw FileError(path, "stores its weights as model.weights.npz; kiln reads model.weights.h5");
    throw FileError(path, "a .keras archive without model.weights.h5");
  }
  const std::string label = path + ":model.weights.h5";
  try {
    const H5::H5File weights = h5::open_image(zip.read("model.weights.h5"), label);
    // Keras 3 names the top container "layers"; tf.keras 2.13-2.15 "_layer_checkpoint_dependencies".
    const std::string top = weights.nameExists("layers") || !weights.nameExists("_layer_checkpoint_dependencies")
                                ? "layers"
                                : "_layer_checkpoint_dependencies";
    load_zip_weights(label, weights, top, root);
  } catch (const H5::Exception& e) {
    throw h5::damaged_file(label, e);
  }
  m.model->eval();
  return m;
}

}  // namespace

LoadedModel build_keras_model(const std::string& config_json, const std::string& label) {
  try {
    const json config = parse_config(label, config_json, "the model config");
    LoadedModel m;
    m.format = "keras-config";
    Importer importer(label);
    Built root;
    m.model = importer.build(config, m.input_shape, m.name, root);
    m.model->eval();
    return m;
  } catch (const json::exception& e) {
    throw FileError(label, std::string("the model config has an unexpected form: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw FileError(label, std::string("cannot build the model: ") + e.what());
  }
}

LoadedModel import_keras(const std::string& path) {
  try {
    if (ZipArchive::looks_like_zip(path)) return import_zip(path);
    if (h5::is_hdf5(path)) return import_h5(path);
    h5::open_file(path);  // throws the precise reason: missing, not HDF5
    throw FileError(path, "not a Keras model file");
  } catch (const json::exception& e) {
    throw FileError(path, std::string("the model config has an unexpected form: ") + e.what());
  } catch (const std::invalid_argument& e) {
    // A layer refused its options (kiln's own checks).
    throw FileError(path, std::string("cannot build the model: ") + e.what());
  }
}

}  // namespace kiln
