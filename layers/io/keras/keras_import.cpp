#include "layers/io/keras/keras_import.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "layers/activation.h"
#include "layers/avg_pool2d.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "core/io/h5_io.h"
#include "layers/max_pool2d.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "core/io/zip_archive.h"

namespace kiln {

using json = nlohmann::json;

namespace {

// "(2, 2)", Keras' way of printing a tuple.
std::string tuple_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

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
struct Flow {
  Shape shape;                // one example's shape in Keras' axis order
  bool held_nhwc = false;     // a channels-first (C,H,W) tensor held as (H,W,C)
};

// A weight the file must supply: Keras' variable name and kiln's tensor.
struct Slot {
  std::string var;   // "kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"
  Tensor* target;
  bool trainable;
};

// One layer of the config, as built, for the weight loaders.
struct Built {
  std::string name, class_name;
  bool trainable = true;
  std::vector<Slot> slots;        // a leaf's weights in creation order
  bool is_model = false;
  bool is_functional = false;
  std::vector<Built> children;    // a nested model's layers, InputLayer included, in order
};

class Importer {
 public:
  explicit Importer(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& message) const { throw FileError(path_, message); }

  // Builds the whole model from its config; returns the kiln model and fills input_shape.
  std::shared_ptr<Sequential> build(const json& model_config, Shape& input_shape, std::string& name,
                                    Built& root) {
    if (!model_config.is_object() || !model_config.contains("class_name"))
      fail("the model config is not a Keras model (no class_name)");
    const std::string cls = model_config["class_name"].get<std::string>();
    if (!is_model_class(cls))
      fail("the model is a '" + cls + "'; kiln imports Sequential and functional (Model) models");
    const json& cfg = model_config.contains("config") ? model_config["config"] : json::object();
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
    to_keras_order(*seq, out);
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

  struct Where {
    std::string class_name, name;
    std::string str() const { return class_name + " '" + name + "'"; }
  };

  static const json& layers_of(const json& cfg) {
    static const json none = json::array();
    if (cfg.is_array()) return cfg;  // Keras 2.0/2.1 Sequential: the config is the layer list
    if (cfg.is_object() && cfg.contains("layers") && cfg["layers"].is_array()) return cfg["layers"];
    return none;
  }

  // A shape with a leading batch entry (null) -> the example's shape; nulls are refused.
  Shape example_shape(const json& batch_shape, const std::string& what) const {
    if (!batch_shape.is_array() || batch_shape.empty()) fail(what + " is not a shape list");
    Shape s;
    std::string shown = "(None";
    bool unknown = false;
    for (size_t i = 1; i < batch_shape.size(); ++i) {
      if (batch_shape[i].is_null()) {
        unknown = true;
        shown += ", None";
        continue;
      }
      if (!batch_shape[i].is_number_integer() || batch_shape[i].get<int64_t>() <= 0 ||
          batch_shape[i].get<int64_t>() > kMaxSize)
        fail(what + " " + batch_shape.dump() + " has an extent that is not a positive integer up to " +
             std::to_string(kMaxSize));
      s.push_back(batch_shape[i].get<int64_t>());
      shown += ", " + std::to_string(s.back());
    }
    shown += batch_shape.size() == 2 ? ",)" : ")";
    if (unknown) fail(what + " " + shown + " has unknown extents; kiln needs fixed input sizes");
    return s;
  }

  static const json* find_batch_shape(const json& layer_cfg) {
    for (const char* key : {"batch_shape", "batch_input_shape"})
      if (layer_cfg.is_object() && layer_cfg.contains(key) && !layer_cfg[key].is_null()) return &layer_cfg[key];
    return nullptr;
  }

  // Where the config states the model's input shape, in the order Keras versions used.
  Shape model_input_shape(const json& model_config) const {
    const std::string cls = model_config["class_name"];
    const json& cfg = model_config.contains("config") ? model_config["config"] : json::object();
    const json& layers = layers_of(cfg);
    if (cls == "Sequential") {
      if (!layers.empty()) {
        const json& first = layers[0];
        const json& fcfg = first.contains("config") ? first["config"] : json::object();
        if (const json* b = find_batch_shape(fcfg)) return example_shape(*b, "the input shape");
        if (fcfg.is_object() && fcfg.contains("input_shape") && fcfg["input_shape"].is_array()) {
          json b = json::array({nullptr});
          for (const json& d : fcfg["input_shape"]) b.push_back(d);
          return example_shape(b, "the input shape");
        }
      }
      if (cfg.is_object() && cfg.contains("build_input_shape") && !cfg["build_input_shape"].is_null())
        return example_shape(cfg["build_input_shape"], "the model's build_input_shape");
      if (!layers.empty() && layers[0].contains("build_config") &&
          layers[0]["build_config"].contains("input_shape"))
        return example_shape(layers[0]["build_config"]["input_shape"], "the first layer's input shape");
      fail("the Sequential model's config states no input shape (no InputLayer, batch_input_shape "
           "or build_input_shape); kiln needs one to build the layers");
    }
    // Functional: its single InputLayer.
    const std::string input = single_endpoint(cfg, "input_layers");
    for (const json& l : layers)
      if (layer_name(l) == input) {
        const json& lcfg = l.contains("config") ? l["config"] : json::object();
        if (const json* b = find_batch_shape(lcfg)) return example_shape(*b, "the input shape");
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
  static void collect_history(const json& v, std::vector<std::string>& out) {
    if (v.is_object()) {
      if (v.value("class_name", "") == "__keras_tensor__" && v.contains("config") &&
          v["config"].contains("keras_history") && v["config"]["keras_history"].is_array() &&
          !v["config"]["keras_history"].empty()) {
        out.push_back(v["config"]["keras_history"][0]);
        return;
      }
      for (auto it = v.begin(); it != v.end(); ++it) collect_history(*it, out);
    } else if (v.is_array()) {
      for (const json& e : v) collect_history(e, out);
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

  // --- reading options -------------------------------------------------------------------

  const json& opt(const json& cfg, const char* key, const Where& w) const {
    if (!cfg.contains(key)) fail(w.str() + " has no '" + key + "' in its config");
    return cfg[key];
  }
  // Sizes (units, filters, kernel sizes, extents) above this are refused before anything is
  // allocated: no real layer has them, and a damaged file must not make kiln ask for terabytes.
  static constexpr int64_t kMaxSize = int64_t{1} << 20;
  int64_t get_int(const json& cfg, const char* key, const Where& w) const {
    const json& v = opt(cfg, key, w);
    if (!v.is_number_integer()) fail(w.str() + ": '" + key + "' is " + v.dump() + ", expected an integer");
    const int64_t x = v.get<int64_t>();
    if (x > kMaxSize) fail(w.str() + ": '" + key + "' is " + v.dump() + ", more than kiln accepts (" + std::to_string(kMaxSize) + ")");
    return x;
  }
  double get_num(const json& cfg, const char* key, double fallback, const Where& w) const {
    if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
    if (!cfg[key].is_number()) fail(w.str() + ": '" + key + "' is " + cfg[key].dump() + ", expected a number");
    return cfg[key].get<double>();
  }
  bool get_bool(const json& cfg, const char* key, bool fallback, const Where& w) const {
    if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
    if (!cfg[key].is_boolean()) fail(w.str() + ": '" + key + "' is " + cfg[key].dump() + ", expected true or false");
    return cfg[key].get<bool>();
  }
  std::string get_str(const json& cfg, const char* key, const std::string& fallback, const Where& w) const {
    if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
    if (!cfg[key].is_string()) fail(w.str() + ": '" + key + "' is " + cfg[key].dump() + ", expected a string");
    return cfg[key].get<std::string>();
  }
  // An int or a list of n ints, each >= 1 (sizes, strides, rates, 1-based axes). Keras
  // writes tuples as lists; hand-made configs use ints.
  std::vector<int64_t> get_ints(const json& cfg, const char* key, size_t n, const Where& w) const {
    const json& v = opt(cfg, key, w);
    std::vector<int64_t> out;
    if (v.is_number_integer()) out.assign(n, v.get<int64_t>());
    if (v.is_array() && v.size() == n)
      for (const json& e : v) out.push_back(e.is_number_integer() ? e.get<int64_t>() : 0);
    if (out.size() != n || std::any_of(out.begin(), out.end(), [](int64_t x) { return x < 1 || x > kMaxSize; }))
      fail(w.str() + ": '" + key + "' is " + v.dump() + ", expected " + std::to_string(n) + " positive integers up to " +
           std::to_string(kMaxSize));
    return out;
  }

  Activation activation_of(const json& cfg, const Where& w) const {
    std::string name = "linear";
    if (cfg.contains("activation") && !cfg["activation"].is_null()) {
      const json& a = cfg["activation"];
      if (a.is_string()) name = a;
      else if (a.is_object() && a.contains("config") && a["config"].is_string()) name = a["config"];
      else if (a.is_object() && a.contains("class_name") && a["class_name"].is_string()) name = a["class_name"];
      else fail(w.str() + " has activation " + a.dump() + ", which kiln cannot read");
    }
    try {
      return parse_activation(name);
    } catch (const std::invalid_argument&) {
      fail(w.str() + " uses activation '" + name + "'; kiln supports linear, relu, sigmoid, tanh, softmax");
    }
  }

  Padding padding_of(const json& cfg, const Where& w) const {
    const std::string p = lower(get_str(cfg, "padding", "valid", w));
    if (p == "valid") return Padding::Valid;
    if (p == "same") return Padding::Same;
    fail(w.str() + " uses padding '" + p + "'; kiln supports 'valid' and 'same'");
  }

  bool channels_first_of(const json& cfg, const Where& w) const {
    const std::string f = get_str(cfg, "data_format", "channels_last", w);
    if (f == "channels_last") return false;
    if (f == "channels_first") return true;
    fail(w.str() + " has data_format '" + f + "'; Keras knows channels_last and channels_first");
  }

  // --- axis order ------------------------------------------------------------------------

  std::string unique_name(Sequential& seq, const std::string& base) {
    std::set<std::string> taken = reserved_;
    for (const auto& [n, m] : seq.named_children()) taken.insert(n);
    std::string n = base;
    for (int i = 1; taken.count(n); ++i) n = base + "_" + std::to_string(i);
    return n;
  }

  // (C,H,W) held as Keras has it -> held as (H,W,C), and back.
  void to_nhwc(Sequential& seq, Flow& f) {
    if (f.held_nhwc) return;
    if (f.shape.size() != 3) fail("internal: channels-first tensor of rank " + std::to_string(f.shape.size()));
    seq.add(std::make_shared<Permute>(std::vector<int64_t>{2, 3, 1}), unique_name(seq, "to_channels_last"));
    f.held_nhwc = true;
  }
  void to_keras_order(Sequential& seq, Flow& f) {
    if (!f.held_nhwc) return;
    seq.add(std::make_shared<Permute>(std::vector<int64_t>{3, 1, 2}), unique_name(seq, "to_channels_first"));
    f.held_nhwc = false;
  }

  // Makes Keras axis `axis` (1-based over the example) the last axis kiln holds, for the ops
  // that work along the last axis (batch norm, softmax).
  void make_axis_last(Sequential& seq, Flow& f, int64_t axis, const Where& w, const char* what) {
    const int64_t rank = static_cast<int64_t>(f.shape.size());
    if (f.held_nhwc) {
      if (axis == 1) return;
      to_keras_order(seq, f);
    }
    if (axis == rank) return;
    if (rank == 3 && axis == 1) {
      to_nhwc(seq, f);
      return;
    }
    fail(w.str() + " works along axis " + std::to_string(axis) + " of its " +
         tuple_str(f.shape) + " input; kiln's " + what + " works along the last (channel) axis");
  }

  // Keras axis (negative allowed, may be a one-element list) -> 1-based axis over the example.
  int64_t axis_of(const json& cfg, const char* key, int64_t fallback, const Flow& f, const Where& w) const {
    int64_t a = fallback;
    if (cfg.contains(key) && !cfg[key].is_null()) {
      const json& v = cfg[key];
      if (v.is_number_integer()) a = v.get<int64_t>();
      else if (v.is_array() && v.size() == 1 && v[0].is_number_integer()) a = v[0].get<int64_t>();
      else fail(w.str() + " has " + key + " " + v.dump() + "; kiln supports a single axis");
    }
    const int64_t rank = static_cast<int64_t>(f.shape.size());
    const int64_t positive = a < 0 ? a + rank + 1 : a;
    if (positive < 1 || positive > rank)
      fail(w.str() + " has " + key + " " + std::to_string(a) + ", outside its " + tuple_str(f.shape) + " input");
    return positive;
  }

  // --- models ----------------------------------------------------------------------------

  // Builds a Sequential or functional config into seq, starting from `in`.
  Flow build_model(const std::string& cls, const json& cfg, Sequential& seq, Flow in, Built& built, bool top) {
    built.is_model = true;
    built.is_functional = cls != "Sequential";
    std::vector<const json*> order;
    if (cls == "Sequential") {
      for (const json& l : layers_of(cfg)) order.push_back(&l);
    } else {
      order = functional_chain(cfg, built.name);
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
    const json& cfg = layer.contains("config") ? layer["config"] : json::object();
    b.class_name = cls;
    b.name = layer_name(layer);
    const Where w{cls, b.name};
    b.trainable = get_bool(cfg, "trainable", true, w);
    const Shape& s = f.shape;
    const auto rank = s.size();

    if (cls == "InputLayer") {
      const json* bs = find_batch_shape(cfg);
      if (!bs) fail(w.str() + " states no batch_shape");
      const Shape declared = example_shape(*bs, w.str() + " shape");
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

    if (cls == "Conv2D") {
      if (rank != 3) fail(w.str() + " gets a " + tuple_str(s) + " input; Conv2D takes images (3 axes per example)");
      const bool cf = channels_first_of(cfg, w);
      const auto k = get_ints(cfg, "kernel_size", 2, w);
      const auto st = get_ints(cfg, "strides", 2, w);
      if (cfg.contains("dilation_rate")) {
        const auto d = get_ints(cfg, "dilation_rate", 2, w);
        if (d[0] != 1 || d[1] != 1) fail(w.str() + " uses dilation_rate " + tuple_str(d) + "; kiln supports 1");
      }
      if (cfg.contains("groups") && get_int(cfg, "groups", w) != 1)
        fail(w.str() + " uses groups " + std::to_string(get_int(cfg, "groups", w)) + "; kiln supports 1");
      if (k[0] != k[1]) fail(w.str() + " has kernel_size " + tuple_str(k) + "; kiln's Conv2D takes square kernels");
      if (st[0] != st[1]) fail(w.str() + " has strides " + tuple_str(st) + "; kiln supports equal strides");
      const Padding pad = padding_of(cfg, w);
      const Activation act = activation_of(cfg, w);
      if (cf && act == Activation::Softmax)
        fail(w.str() + " applies softmax over the width axis of a channels_first output; kiln does not support it");
      const int64_t C = cf ? s[0] : s[2], H = cf ? s[1] : s[0], W = cf ? s[2] : s[1];
      if (pad == Padding::Valid && (H < k[0] || W < k[0]))
        fail(w.str() + ": input " + tuple_str(s) + " is smaller than its kernel " + tuple_str(k));
      const int64_t F = get_int(cfg, "filters", w);
      cf ? to_nhwc(seq, f) : to_keras_order(seq, f);
      const float l2 = l2_of(cfg, w);
      auto conv = std::make_shared<Conv2D>(Conv2DOptions{.in_channels = C, .filters = F,
                                                         .kernel = static_cast<int>(k[0]),
                                                         .stride = static_cast<int>(st[0]), .padding = pad,
                                                         .use_bias = get_bool(cfg, "use_bias", true, w),
                                                         .activation = act, .l2 = l2});
      b.slots.push_back({"kernel", &conv->kernel(), true});
      if (conv->options().use_bias) b.slots.push_back({"bias", &conv->bias(), true});
      seq.add(conv, b.name);
      const int64_t Ho = out_size(H, k[0], st[0], pad), Wo = out_size(W, k[0], st[0], pad);
      f.shape = cf ? Shape{F, Ho, Wo} : Shape{Ho, Wo, F};
      return f;
    }

    if (cls == "MaxPooling2D" || cls == "AveragePooling2D") {
      if (rank != 3) fail(w.str() + " gets a " + tuple_str(s) + " input; it takes images (3 axes per example)");
      const bool cf = channels_first_of(cfg, w);
      const auto p = get_ints(cfg, "pool_size", 2, w);
      const auto st = cfg.contains("strides") && !cfg["strides"].is_null() ? get_ints(cfg, "strides", 2, w) : p;
      if (p[0] != p[1]) fail(w.str() + " has pool_size " + tuple_str(p) + "; kiln supports square pools");
      if (st[0] != st[1]) fail(w.str() + " has strides " + tuple_str(st) + "; kiln supports equal strides");
      const Padding pad = padding_of(cfg, w);
      const int64_t C = cf ? s[0] : s[2], H = cf ? s[1] : s[0], W = cf ? s[2] : s[1];
      if (pad == Padding::Valid && (H < p[0] || W < p[0]))
        fail(w.str() + ": input " + tuple_str(s) + " is smaller than its pool " + tuple_str(p));
      cf ? to_nhwc(seq, f) : to_keras_order(seq, f);
      const MaxPool2DOptions o{.pool = static_cast<int>(p[0]), .stride = static_cast<int>(st[0]), .padding = pad};
      if (cls == "MaxPooling2D") seq.add(std::make_shared<MaxPool2D>(o), b.name);
      else seq.add(std::make_shared<AvgPool2D>(o), b.name);
      const int64_t Ho = out_size(H, p[0], st[0], pad), Wo = out_size(W, p[0], st[0], pad);
      f.shape = cf ? Shape{C, Ho, Wo} : Shape{Ho, Wo, C};
      return f;
    }

    if (cls == "Flatten") {
      // Keras' Flatten with data_format channels_first first moves axis 1 last, then
      // flattens; with channels_last it flattens the axes as they are.
      const bool cf = channels_first_of(cfg, w);
      if (cf && rank > 1) {
        if (!f.held_nhwc) {
          if (rank == 3) {
            to_nhwc(seq, f);
          } else {
            std::vector<int64_t> dims;
            for (size_t a = 2; a <= rank; ++a) dims.push_back(static_cast<int64_t>(a));
            dims.push_back(1);
            seq.add(std::make_shared<Permute>(dims), unique_name(seq, "to_channels_last"));
          }
        }
      } else {
        to_keras_order(seq, f);
      }
      seq.add(std::make_shared<Flatten>(), b.name);
      f.shape = {shape_numel(s)};
      f.held_nhwc = false;
      return f;
    }

    if (cls == "Dense") {
      if (rank != 1)
        fail(w.str() + " gets a " + tuple_str(s) + " input; kiln's Dense takes flat (features,) inputs "
             "(Keras applies it along the last axis; put a Flatten before it)");
      const int64_t units = get_int(cfg, "units", w);
      auto dense = std::make_shared<Dense>(DenseOptions{.in_features = s[0], .units = units,
                                                        .use_bias = get_bool(cfg, "use_bias", true, w),
                                                        .activation = activation_of(cfg, w),
                                                        .l2 = l2_of(cfg, w)});
      b.slots.push_back({"kernel", &dense->kernel(), true});
      if (dense->options().use_bias) b.slots.push_back({"bias", &dense->bias(), true});
      seq.add(dense, b.name);
      f.shape = {units};
      return f;
    }

    if (cls == "Dropout") {
      const double rate = get_num(cfg, "rate", 0.0, w);
      if (cfg.contains("noise_shape") && !cfg["noise_shape"].is_null())
        fail(w.str() + " uses noise_shape " + cfg["noise_shape"].dump() + "; kiln's Dropout drops single elements");
      if (!(rate >= 0.0 && rate < 1.0)) fail(w.str() + " has rate " + std::to_string(rate) + "; expected [0, 1)");
      seq.add(std::make_shared<Dropout>(static_cast<float>(rate)), b.name);
      return f;
    }

    if (cls == "BatchNormalization") {
      if (get_bool(cfg, "renorm", false, w)) fail(w.str() + " uses renorm; kiln does not support batch renormalisation");
      if (cfg.contains("virtual_batch_size") && !cfg["virtual_batch_size"].is_null())
        fail(w.str() + " uses virtual_batch_size " + cfg["virtual_batch_size"].dump() + "; kiln does not support it");
      const int64_t axis = axis_of(cfg, "axis", -1, f, w);
      const int64_t C = s[static_cast<size_t>(axis - 1)];
      make_axis_last(seq, f, axis, w, "batch normalisation");
      auto bn = std::make_shared<BatchNorm2d>(BatchNormOptions{
          .channels = C, .momentum = static_cast<float>(get_num(cfg, "momentum", 0.99, w)),
          .epsilon = static_cast<float>(get_num(cfg, "epsilon", 1e-3, w))});
      if (get_bool(cfg, "scale", true, w)) b.slots.push_back({"gamma", &bn->gamma(), true});
      if (get_bool(cfg, "center", true, w)) b.slots.push_back({"beta", &bn->beta(), true});
      b.slots.push_back({"moving_mean", &bn->moving_mean(), false});
      b.slots.push_back({"moving_variance", &bn->moving_variance(), false});
      seq.add(bn, b.name);
      return f;
    }

    if (cls == "Activation" || cls == "ReLU" || cls == "Softmax") {
      Activation act = Activation::ReLU;
      if (cls == "Activation") act = activation_of(cfg, w);
      if (cls == "ReLU") {
        if (cfg.contains("max_value") && !cfg["max_value"].is_null())
          fail(w.str() + " uses max_value " + cfg["max_value"].dump() + "; kiln's ReLU is unbounded");
        if (get_num(cfg, "negative_slope", 0.0, w) != 0.0)
          fail(w.str() + " uses negative_slope " + cfg["negative_slope"].dump() + "; kiln supports 0");
        if (get_num(cfg, "threshold", 0.0, w) != 0.0)
          fail(w.str() + " uses threshold " + cfg["threshold"].dump() + "; kiln supports 0");
      }
      if (cls == "Softmax") act = Activation::Softmax;
      if (act == Activation::Softmax && rank > 1)
        make_axis_last(seq, f, cls == "Softmax" ? axis_of(cfg, "axis", -1, f, w) : static_cast<int64_t>(rank), w,
                       "softmax");
      seq.add(std::make_shared<ActivationLayer>(act), b.name);
      return f;
    }

    if (cls == "Reshape") {
      const json& t = opt(cfg, "target_shape", w);
      if (!t.is_array()) fail(w.str() + ": target_shape " + t.dump() + " is not a list");
      Shape target;
      int64_t known = 1, unknown = 0;
      for (const json& d : t) {
        if (!d.is_number_integer() || (d.get<int64_t>() <= 0 && d.get<int64_t>() != -1))
          fail(w.str() + ": target_shape " + t.dump() + " must hold positive sizes or one -1");
        target.push_back(d.get<int64_t>());
        if (target.back() == -1) ++unknown;
        else known *= target.back();
      }
      const int64_t n = shape_numel(s);
      if (unknown > 1 || (unknown == 0 && known != n) || (unknown == 1 && n % known != 0))
        fail(w.str() + ": cannot reshape " + tuple_str(s) + " (" + std::to_string(n) + " values) to " +
             tuple_str(target));
      to_keras_order(seq, f);
      seq.add(std::make_shared<Reshape>(target), b.name);
      for (int64_t& d : target)
        if (d == -1) d = n / known;
      f.shape = target;
      return f;
    }

    if (cls == "Permute") {
      const auto dims = get_ints(cfg, "dims", rank, w);
      std::vector<bool> seen(rank + 1, false);
      for (int64_t d : dims) {
        if (d < 1 || d > static_cast<int64_t>(rank) || seen[static_cast<size_t>(d)])
          fail(w.str() + ": dims " + tuple_str(dims) + " is not a permutation of 1.." + std::to_string(rank));
        seen[static_cast<size_t>(d)] = true;
      }
      to_keras_order(seq, f);
      seq.add(std::make_shared<Permute>(dims), b.name);
      Shape out;
      for (int64_t d : dims) out.push_back(s[static_cast<size_t>(d - 1)]);
      f.shape = out;
      return f;
    }

    fail("layer '" + b.name + "' is a " + cls + ", which kiln cannot import; kiln supports InputLayer, "
         "Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout, BatchNormalization, "
         "Activation, ReLU, Softmax, Reshape, Permute, and Sequential or single-chain functional models of these");
  }

  static int64_t out_size(int64_t in, int64_t k, int64_t stride, Padding pad) {
    return pad == Padding::Same ? (in + stride - 1) / stride : (in - k) / stride + 1;
  }

  // The L2 factor of a kernel_regularizer (only used if the model is trained further in kiln).
  float l2_of(const json& cfg, const Where& w) const {
    if (!cfg.contains("kernel_regularizer") || cfg["kernel_regularizer"].is_null()) return 0.0f;
    const json& r = cfg["kernel_regularizer"];
    const json& rc = r.contains("config") ? r["config"] : json::object();
    const std::string cls = r.value("class_name", "");
    if (cls == "L2" || cls == "l2" || cls == "L1L2") {
      if (get_num(rc, "l1", 0.0, w) != 0.0)
        fail(w.str() + " has an L1 kernel_regularizer; kiln supports L2 only");
      return static_cast<float>(get_num(rc, "l2", 0.0, w));
    }
    fail(w.str() + " has kernel_regularizer " + r.dump() + "; kiln supports L2 only");
  }

  std::string path_;
  std::set<std::string> reserved_;  // Keras layer names of the model being built
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
