#include "layers/io/keras/keras_config.h"

#include <algorithm>
#include <cctype>

#include "core/io/file_error.h"
#include "layers/permute.h"

namespace kiln::keras {

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

const json& empty_object() {
  static const json empty = json::object();
  return empty;
}

void ConfigReader::fail(const std::string& message) const { throw FileError(path_, message); }

const json& ConfigReader::opt(const json& cfg, const char* key, const Where& w) const {
  if (!cfg.contains(key)) fail(w.str() + " has no '" + key + "' in its config");
  return cfg[key];
}

int64_t ConfigReader::get_int(const json& cfg, const char* key, const Where& w) const {
  const json& v = opt(cfg, key, w);
  if (!v.is_number_integer()) fail(w.str() + ": '" + key + "' is " + v.dump() + ", expected an integer");
  const int64_t x = v.get<int64_t>();
  if (x > kMaxSize) fail(w.str() + ": '" + key + "' is " + v.dump() + ", more than kiln accepts (" + std::to_string(kMaxSize) + ")");
  return x;
}
double ConfigReader::get_num(const json& cfg, const char* key, double fallback, const Where& w) const {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_number()) fail(w.str() + ": '" + key + "' is " + cfg[key].dump() + ", expected a number");
  return cfg[key].get<double>();
}
bool ConfigReader::get_bool(const json& cfg, const char* key, bool fallback, const Where& w) const {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_boolean()) fail(w.str() + ": '" + key + "' is " + cfg[key].dump() + ", expected true or false");
  return cfg[key].get<bool>();
}
std::string ConfigReader::get_str(const json& cfg, const char* key, const std::string& fallback, const Where& w) const {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  if (!cfg[key].is_string()) fail(w.str() + ": '" + key + "' is " + cfg[key].dump() + ", expected a string");
  return cfg[key].get<std::string>();
}
// An int or a list of n ints, each >= 1 (sizes, strides, rates, 1-based axes). Keras
// writes tuples as lists; hand-made configs use ints.
std::vector<int64_t> ConfigReader::get_ints(const json& cfg, const char* key, size_t n, const Where& w) const {
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

Activation ConfigReader::activation_of(const json& cfg, const Where& w) const {
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

Padding ConfigReader::padding_of(const json& cfg, const Where& w) const {
  const std::string p = lower(get_str(cfg, "padding", "valid", w));
  if (p == "valid") return Padding::Valid;
  if (p == "same") return Padding::Same;
  fail(w.str() + " uses padding '" + p + "'; kiln supports 'valid' and 'same'");
}

bool ConfigReader::channels_first_of(const json& cfg, const Where& w) const {
  const std::string f = get_str(cfg, "data_format", "channels_last", w);
  if (f == "channels_last") return false;
  if (f == "channels_first") return true;
  fail(w.str() + " has data_format '" + f + "'; Keras knows channels_last and channels_first");
}

// A shape with a leading batch entry (null) -> the example's shape; nulls are refused.
Shape ConfigReader::example_shape(const json& batch_shape, const std::string& what) const {
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

// Keras axis (negative allowed, may be a one-element list) -> 1-based axis over the example.
int64_t ConfigReader::axis_of(const json& cfg, const char* key, int64_t fallback, const Flow& f, const Where& w) const {
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

// The L2 factor of a kernel_regularizer (only used if the model is trained further in kiln).
float ConfigReader::l2_of(const json& cfg, const Where& w) const {
  if (!cfg.contains("kernel_regularizer") || cfg["kernel_regularizer"].is_null()) return 0.0f;
  const json& r = cfg["kernel_regularizer"];
  const json& rc = r.contains("config") ? r["config"] : empty_object();
  const std::string cls = r.value("class_name", "");
  if (cls == "L2" || cls == "l2" || cls == "L1L2") {
    if (get_num(rc, "l1", 0.0, w) != 0.0)
      fail(w.str() + " has an L1 kernel_regularizer; kiln supports L2 only");
    return static_cast<float>(get_num(rc, "l2", 0.0, w));
  }
  fail(w.str() + " has kernel_regularizer " + r.dump() + "; kiln supports L2 only");
}

int64_t window_output_size(int64_t in, int64_t k, int64_t stride, Padding pad) {
  return pad == Padding::Same ? (in + stride - 1) / stride : (in - k) / stride + 1;
}

std::string BuildContext::unique_name(const std::string& base) const {
  std::set<std::string> taken = reserved;
  for (const auto& [n, m] : seq.named_children()) taken.insert(n);
  std::string n = base;
  for (int i = 1; taken.count(n); ++i) n = base + "_" + std::to_string(i);
  return n;
}

// (C,H,W) held as Keras has it -> held as (H,W,C), and back.
void BuildContext::to_nhwc(Flow& f) const {
  if (f.held_nhwc) return;
  if (f.shape.size() != 3) reader.fail("internal: channels-first tensor of rank " + std::to_string(f.shape.size()));
  seq.add(std::make_shared<Permute>(std::vector<int64_t>{2, 3, 1}), unique_name("to_channels_last"));
  f.held_nhwc = true;
}
void BuildContext::to_keras_order(Flow& f) const {
  if (!f.held_nhwc) return;
  seq.add(std::make_shared<Permute>(std::vector<int64_t>{3, 1, 2}), unique_name("to_channels_first"));
  f.held_nhwc = false;
}

// Makes Keras axis `axis` (1-based over the example) the last axis kiln holds, for the ops
// that work along the last axis (batch norm, softmax).
void BuildContext::make_axis_last(Flow& f, int64_t axis, const Where& w, const char* what) const {
  const int64_t rank = static_cast<int64_t>(f.shape.size());
  if (f.held_nhwc) {
    if (axis == 1) return;
    to_keras_order(f);
  }
  if (axis == rank) return;
  if (rank == 3 && axis == 1) {
    to_nhwc(f);
    return;
  }
  reader.fail(w.str() + " works along axis " + std::to_string(axis) + " of its " +
       tuple_str(f.shape) + " input; kiln's " + what + " works along the last (channel) axis");
}

}  // namespace kiln::keras
