// Internal to the Keras importer (layers/io/keras/): reading a Keras model config, and the
// state a layer is built in. keras_layers.cpp holds one small function per Keras layer class,
// keras_import.cpp walks the models and loads the weights.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "layers/activation.h"
#include "layers/sequential.h"

namespace kiln::keras {

using json = nlohmann::json;

// An empty JSON object that lives forever. `x.contains("config") ? x["config"] : empty_object()`
// binds a reference; with a temporary `json::object()` in the other branch the conditional
// would copy x["config"], a deep and recursive copy of what may be a hostile, deeply nested tree.
const json& empty_object();

// "(2, 2)", Keras' way of printing a tuple.
std::string tuple_str(const std::vector<int64_t>& v);
std::string lower(std::string s);

// One example's shape as it flows through the layers being built.
struct Flow {
  Shape shape;                // in Keras' axis order
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

// The layer an error is about: "Conv2D 'conv2d_1'".
struct Where {
  std::string class_name, name;
  std::string str() const { return class_name + " '" + name + "'"; }
};

// Reads options out of a layer's config; every error is a FileError naming the file, the
// layer and the option.
class ConfigReader {
 public:
  explicit ConfigReader(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& message) const;

  // Sizes (units, filters, kernel sizes, extents) above this are refused before anything is
  // allocated: no real layer has them, and a damaged file must not make kiln ask for terabytes.
  static constexpr int64_t kMaxSize = int64_t{1} << 20;

  const json& opt(const json& cfg, const char* key, const Where& w) const;  // must be there
  int64_t get_int(const json& cfg, const char* key, const Where& w) const;
  double get_num(const json& cfg, const char* key, double fallback, const Where& w) const;
  bool get_bool(const json& cfg, const char* key, bool fallback, const Where& w) const;
  std::string get_str(const json& cfg, const char* key, const std::string& fallback, const Where& w) const;
  // An int or a list of n ints, each >= 1 (sizes, strides, rates, 1-based axes). Keras
  // writes tuples as lists; hand-made configs use ints.
  std::vector<int64_t> get_ints(const json& cfg, const char* key, size_t n, const Where& w) const;

  Activation activation_of(const json& cfg, const Where& w) const;
  Padding padding_of(const json& cfg, const Where& w) const;
  bool channels_first_of(const json& cfg, const Where& w) const;
  // Keras axis (negative allowed, may be a one-element list) -> 1-based axis over the example.
  int64_t axis_of(const json& cfg, const char* key, int64_t fallback, const Flow& f, const Where& w) const;
  // The L2 factor of a kernel_regularizer (only used if the model is trained further in kiln).
  float l2_of(const json& cfg, const Where& w) const;
  // A shape with a leading batch entry (null) -> the example's shape; nulls are refused.
  Shape example_shape(const json& batch_shape, const std::string& what) const;

 private:
  std::string path_;
};

// Where a layer is built: the Sequential its kiln layers go into, and the Permutes that
// keep kiln's NHWC and Keras' axis order apart.
class BuildContext {
 public:
  BuildContext(const ConfigReader& r, Sequential& s, const std::set<std::string>& keras_names)
      : reader(r), seq(s), reserved(keras_names) {}
  const ConfigReader& reader;
  Sequential& seq;
  const std::set<std::string>& reserved;  // the Keras layer names of the model being built

  // base, or base_1, base_2, ... : a name neither Keras' layers nor seq's children use.
  std::string unique_name(const std::string& base) const;
  // (C,H,W) held as Keras has it -> held as (H,W,C), and back.
  void to_nhwc(Flow& f) const;
  void to_keras_order(Flow& f) const;
  // Makes Keras axis `axis` (1-based over the example) the last axis kiln holds, for the ops
  // that work along the last axis (batch norm, softmax).
  void make_axis_last(Flow& f, int64_t axis, const Where& w, const char* what) const;
};

// Output size of a window of k with the stride and padding, as Keras computes it.
int64_t window_output_size(int64_t in, int64_t k, int64_t stride, Padding pad);

// One Keras layer class: builds the kiln layers for the layer with config `cfg` into c.seq,
// records its weight slots in b, and returns the flow after it.
using LayerImporter = Flow (*)(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b);
// The importer for Keras class `class_name`, or null when kiln cannot import that class.
LayerImporter layer_importer(const std::string& class_name);
// One Keras class that joins several tensors (Add, Concatenate), in a functional model's
// graph: checks its inputs' flows (held in one axis order by the caller), returns the kiln
// module and sets the flow after it.
using MergeImporter = std::shared_ptr<Module> (*)(const ConfigReader& r, const json& cfg, const Where& w,
                                                 const std::vector<Flow>& ins, Flow& out);
// The importer for Keras merge class `class_name`, or null.
MergeImporter merge_importer(const std::string& class_name);
// "Add, Conv2D, MaxPooling2D, ...": the classes layer_importer and merge_importer know, for error messages.
std::string importable_classes();

}  // namespace kiln::keras
