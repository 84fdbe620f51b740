// One function per Keras layer class: the config's options checked and turned into kiln
// layers. A class kiln can import is one function here and one line in the table below.
#include <map>
#include <set>
#include <memory>

#include "layers/add.h"
#include "layers/avg_pool2d.h"
#include "layers/batch_norm2d.h"
#include "layers/concatenate.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/global_avg_pool2d.h"
#include "layers/io/keras/keras_config.h"
#include "layers/max_pool2d.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "layers/zero_padding2d.h"

namespace kiln::keras {
namespace {

// Conv2D: square kernels, equal strides, no dilation or groups; channels_first input is held NHWC.
Flow import_conv2d(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const auto rank = s.size();
  if (rank != 3) r.fail(w.str() + " gets a " + tuple_str(s) + " input; Conv2D takes images (3 axes per example)");
  const bool cf = r.channels_first_of(cfg, w);
  const auto k = r.get_ints(cfg, "kernel_size", 2, w);
  const auto st = r.get_ints(cfg, "strides", 2, w);
  if (cfg.contains("dilation_rate")) {
    const auto d = r.get_ints(cfg, "dilation_rate", 2, w);
    if (d[0] != 1 || d[1] != 1) r.fail(w.str() + " uses dilation_rate " + tuple_str(d) + "; kiln supports 1");
  }
  if (cfg.contains("groups") && r.get_int(cfg, "groups", w) != 1)
    r.fail(w.str() + " uses groups " + std::to_string(r.get_int(cfg, "groups", w)) + "; kiln supports 1");
  if (k[0] != k[1]) r.fail(w.str() + " has kernel_size " + tuple_str(k) + "; kiln's Conv2D takes square kernels");
  if (st[0] != st[1]) r.fail(w.str() + " has strides " + tuple_str(st) + "; kiln supports equal strides");
  const Padding pad = r.padding_of(cfg, w);
  const Activation act = r.activation_of(cfg, w);
  if (cf && act == Activation::Softmax)
    r.fail(w.str() + " applies softmax over the width axis of a channels_first output; kiln does not support it");
  const int64_t C = cf ? s[0] : s[2], H = cf ? s[1] : s[0], W = cf ? s[2] : s[1];
  if (pad == Padding::Valid && (H < k[0] || W < k[0]))
    r.fail(w.str() + ": input " + tuple_str(s) + " is smaller than its kernel " + tuple_str(k));
  const int64_t F = r.get_int(cfg, "filters", w);
  cf ? c.to_nhwc(f) : c.to_keras_order(f);
  const float l2 = r.l2_of(cfg, w);
  auto conv = std::make_shared<Conv2D>(Conv2DOptions{.in_channels = C, .filters = F,
                                                     .kernel = static_cast<int>(k[0]),
                                                     .stride = static_cast<int>(st[0]), .padding = pad,
                                                     .use_bias = r.get_bool(cfg, "use_bias", true, w),
                                                     .activation = act, .l2 = l2});
  b.slots.push_back({"kernel", &conv->kernel(), true});
  if (conv->options().use_bias) b.slots.push_back({"bias", &conv->bias(), true});
  c.seq.add(conv, b.name);
  const int64_t Ho = window_output_size(H, k[0], st[0], pad), Wo = window_output_size(W, k[0], st[0], pad);
  f.shape = cf ? Shape{F, Ho, Wo} : Shape{Ho, Wo, F};
  return f;
}

// MaxPooling2D and AveragePooling2D: square pools, equal strides.
Flow import_pooling2d(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const auto rank = s.size();
  const std::string& cls = b.class_name;
  if (rank != 3) r.fail(w.str() + " gets a " + tuple_str(s) + " input; it takes images (3 axes per example)");
  const bool cf = r.channels_first_of(cfg, w);
  const auto p = r.get_ints(cfg, "pool_size", 2, w);
  const auto st = cfg.contains("strides") && !cfg["strides"].is_null() ? r.get_ints(cfg, "strides", 2, w) : p;
  if (p[0] != p[1]) r.fail(w.str() + " has pool_size " + tuple_str(p) + "; kiln supports square pools");
  if (st[0] != st[1]) r.fail(w.str() + " has strides " + tuple_str(st) + "; kiln supports equal strides");
  const Padding pad = r.padding_of(cfg, w);
  const int64_t C = cf ? s[0] : s[2], H = cf ? s[1] : s[0], W = cf ? s[2] : s[1];
  if (pad == Padding::Valid && (H < p[0] || W < p[0]))
    r.fail(w.str() + ": input " + tuple_str(s) + " is smaller than its pool " + tuple_str(p));
  cf ? c.to_nhwc(f) : c.to_keras_order(f);
  const MaxPool2DOptions o{.pool = static_cast<int>(p[0]), .stride = static_cast<int>(st[0]), .padding = pad};
  if (cls == "MaxPooling2D") c.seq.add(std::make_shared<MaxPool2D>(o), b.name);
  else c.seq.add(std::make_shared<AvgPool2D>(o), b.name);
  const int64_t Ho = window_output_size(H, p[0], st[0], pad), Wo = window_output_size(W, p[0], st[0], pad);
  f.shape = cf ? Shape{C, Ho, Wo} : Shape{Ho, Wo, C};
  return f;
}

// Flatten.
Flow import_flatten(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const auto rank = s.size();
  // Keras' Flatten with data_format channels_first first moves axis 1 last, then
  // flattens; with channels_last it flattens the axes as they are.
  const bool cf = r.channels_first_of(cfg, w);
  if (cf && rank > 1) {
    if (!f.held_nhwc) {
      if (rank == 3) {
        c.to_nhwc(f);
      } else {
        std::vector<int64_t> dims;
        for (size_t a = 2; a <= rank; ++a) dims.push_back(static_cast<int64_t>(a));
        dims.push_back(1);
        c.seq.add(std::make_shared<Permute>(dims), c.unique_name("to_channels_last"));
      }
    }
  } else {
    c.to_keras_order(f);
  }
  c.seq.add(std::make_shared<Flatten>(), b.name);
  f.shape = {shape_numel(s)};
  f.held_nhwc = false;
  return f;
}

// Dense on flat (features,) inputs.
Flow import_dense(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const auto rank = s.size();
  if (rank != 1)
    r.fail(w.str() + " gets a " + tuple_str(s) + " input; kiln's Dense takes flat (features,) inputs "
         "(Keras applies it along the last axis; put a Flatten before it)");
  const int64_t units = r.get_int(cfg, "units", w);
  auto dense = std::make_shared<Dense>(DenseOptions{.in_features = s[0], .units = units,
                                                    .use_bias = r.get_bool(cfg, "use_bias", true, w),
                                                    .activation = r.activation_of(cfg, w),
                                                    .l2 = r.l2_of(cfg, w)});
  b.slots.push_back({"kernel", &dense->kernel(), true});
  if (dense->options().use_bias) b.slots.push_back({"bias", &dense->bias(), true});
  c.seq.add(dense, b.name);
  f.shape = {units};
  return f;
}

// Dropout of single elements (no noise_shape).
Flow import_dropout(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const double rate = r.get_num(cfg, "rate", 0.0, w);
  if (cfg.contains("noise_shape") && !cfg["noise_shape"].is_null())
    r.fail(w.str() + " uses noise_shape " + cfg["noise_shape"].dump() + "; kiln's Dropout drops single elements");
  if (!(rate >= 0.0 && rate < 1.0)) r.fail(w.str() + " has rate " + std::to_string(rate) + "; expected [0, 1)");
  c.seq.add(std::make_shared<Dropout>(static_cast<float>(rate)), b.name);
  return f;
}

// BatchNormalization along one axis, made the last axis kiln holds.
Flow import_batch_normalization(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  if (r.get_bool(cfg, "renorm", false, w)) r.fail(w.str() + " uses renorm; kiln does not support batch renormalisation");
  if (cfg.contains("virtual_batch_size") && !cfg["virtual_batch_size"].is_null())
    r.fail(w.str() + " uses virtual_batch_size " + cfg["virtual_batch_size"].dump() + "; kiln does not support it");
  const int64_t axis = r.axis_of(cfg, "axis", -1, f, w);
  const int64_t C = s[static_cast<size_t>(axis - 1)];
  c.make_axis_last(f, axis, w, "batch normalisation");
  auto bn = std::make_shared<BatchNorm2d>(BatchNormOptions{
      .channels = C, .momentum = static_cast<float>(r.get_num(cfg, "momentum", 0.99, w)),
      .epsilon = static_cast<float>(r.get_num(cfg, "epsilon", 1e-3, w))});
  if (r.get_bool(cfg, "scale", true, w)) b.slots.push_back({"gamma", &bn->gamma(), true});
  if (r.get_bool(cfg, "center", true, w)) b.slots.push_back({"beta", &bn->beta(), true});
  b.slots.push_back({"moving_mean", &bn->moving_mean(), false});
  b.slots.push_back({"moving_variance", &bn->moving_variance(), false});
  c.seq.add(bn, b.name);
  return f;
}

// Activation, ReLU (unbounded, slope 0, threshold 0) and Softmax (along one axis).
Flow import_activation(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const auto rank = s.size();
  const std::string& cls = b.class_name;
  Activation act = Activation::ReLU;
  if (cls == "Activation") act = r.activation_of(cfg, w);
  if (cls == "ReLU") {
    if (cfg.contains("max_value") && !cfg["max_value"].is_null())
      r.fail(w.str() + " uses max_value " + cfg["max_value"].dump() + "; kiln's ReLU is unbounded");
    if (r.get_num(cfg, "negative_slope", 0.0, w) != 0.0)
      r.fail(w.str() + " uses negative_slope " + cfg["negative_slope"].dump() + "; kiln supports 0");
    if (r.get_num(cfg, "threshold", 0.0, w) != 0.0)
      r.fail(w.str() + " uses threshold " + cfg["threshold"].dump() + "; kiln supports 0");
  }
  if (cls == "Softmax") act = Activation::Softmax;
  if (act == Activation::Softmax && rank > 1)
    c.make_axis_last(f, cls == "Softmax" ? r.axis_of(cfg, "axis", -1, f, w) : static_cast<int64_t>(rank), w,
                   "softmax");
  c.seq.add(std::make_shared<ActivationLayer>(act), b.name);
  return f;
}

// Reshape in Keras' axis order, with at most one -1.
Flow import_reshape(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const json& t = r.opt(cfg, "target_shape", w);
  if (!t.is_array()) r.fail(w.str() + ": target_shape " + t.dump() + " is not a list");
  Shape target;
  int64_t known = 1, unknown = 0;
  for (const json& d : t) {
    if (!d.is_number_integer() || (d.get<int64_t>() <= 0 && d.get<int64_t>() != -1))
      r.fail(w.str() + ": target_shape " + t.dump() + " must hold positive sizes or one -1");
    target.push_back(d.get<int64_t>());
    if (target.back() == -1) ++unknown;
    else known *= target.back();
  }
  const int64_t n = shape_numel(s);
  if (unknown > 1 || (unknown == 0 && known != n) || (unknown == 1 && n % known != 0))
    r.fail(w.str() + ": cannot reshape " + tuple_str(s) + " (" + std::to_string(n) + " values) to " +
         tuple_str(target));
  c.to_keras_order(f);
  c.seq.add(std::make_shared<Reshape>(target), b.name);
  for (int64_t& d : target)
    if (d == -1) d = n / known;
  f.shape = target;
  return f;
}

// Permute: a permutation of the example's axes, 1-based.
Flow import_permute(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  const auto rank = s.size();
  const auto dims = r.get_ints(cfg, "dims", rank, w);
  std::vector<bool> seen(rank + 1, false);
  for (int64_t d : dims) {
    if (d < 1 || d > static_cast<int64_t>(rank) || seen[static_cast<size_t>(d)])
      r.fail(w.str() + ": dims " + tuple_str(dims) + " is not a permutation of 1.." + std::to_string(rank));
    seen[static_cast<size_t>(d)] = true;
  }
  c.to_keras_order(f);
  c.seq.add(std::make_shared<Permute>(dims), b.name);
  Shape out;
  for (int64_t d : dims) out.push_back(s[static_cast<size_t>(d - 1)]);
  f.shape = out;
  return f;
}

// GlobalAveragePooling2D: the mean over the image of each channel; keepdims keeps (1, 1).
Flow import_global_average_pooling2d(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  if (s.size() != 3) r.fail(w.str() + " gets a " + tuple_str(s) + " input; it takes images (3 axes per example)");
  const bool cf = r.channels_first_of(cfg, w);
  const bool keepdims = r.get_bool(cfg, "keepdims", false, w);
  cf ? c.to_nhwc(f) : c.to_keras_order(f);
  c.seq.add(std::make_shared<GlobalAvgPool2D>(keepdims), b.name);
  const int64_t C = cf ? s[0] : s[2];
  if (!keepdims) {
    f = Flow{.shape = {C}};
  } else {
    f.shape = cf ? Shape{C, 1, 1} : Shape{1, 1, C};  // a channels-first result stays held as (1, 1, C)
  }
  return f;
}

// ZeroPadding2D: padding as one int, (rows, columns) or ((top, bottom), (left, right)).
Flow import_zero_padding2d(BuildContext& c, const json& cfg, const Where& w, Flow f, Built& b) {
  const ConfigReader& r = c.reader;
  const Shape& s = f.shape;
  if (s.size() != 3) r.fail(w.str() + " gets a " + tuple_str(s) + " input; it takes images (3 axes per example)");
  const bool cf = r.channels_first_of(cfg, w);
  const json& p = r.opt(cfg, "padding", w);
  auto amount = [&](const json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > ConfigReader::kMaxSize)
      r.fail(w.str() + ": padding " + p.dump() + " must hold sizes from 0 to " + std::to_string(ConfigReader::kMaxSize));
    return v.get<int64_t>();
  };
  ZeroPadding2DOptions o;
  if (p.is_number_integer()) {
    o.top = o.bottom = o.left = o.right = amount(p);
  } else if (p.is_array() && p.size() == 2 && p[0].is_number_integer()) {
    o.top = o.bottom = amount(p[0]);
    o.left = o.right = amount(p[1]);
  } else if (p.is_array() && p.size() == 2 && p[0].is_array() && p[0].size() == 2 && p[1].is_array() && p[1].size() == 2) {
    o = {.top = amount(p[0][0]), .bottom = amount(p[0][1]), .left = amount(p[1][0]), .right = amount(p[1][1])};
  } else {
    r.fail(w.str() + ": padding " + p.dump() + " is not an int, (rows, columns) or ((top, bottom), (left, right))");
  }
  cf ? c.to_nhwc(f) : c.to_keras_order(f);
  c.seq.add(std::make_shared<ZeroPadding2D>(o), b.name);
  const int64_t C = cf ? s[0] : s[2], H = (cf ? s[1] : s[0]) + o.top + o.bottom, W = (cf ? s[2] : s[1]) + o.left + o.right;
  f.shape = cf ? Shape{C, H, W} : Shape{H, W, C};
  return f;
}

// "(14, 14, 6), (14, 14, 3)": a merge's input shapes, for its errors.
std::string shapes_of(const std::vector<Flow>& ins) {
  std::string shapes;
  for (const Flow& f : ins) shapes += (shapes.empty() ? "" : ", ") + tuple_str(f.shape);
  return shapes;
}

// Add: inputs of one shape.
std::shared_ptr<Module> import_add(const ConfigReader& r, const json&, const Where& w, const std::vector<Flow>& ins,
                                   Flow& out) {
  for (const Flow& f : ins)
    if (f.shape != ins[0].shape)
      r.fail(w.str() + " adds inputs of shapes " + shapes_of(ins) + "; kiln's Add takes inputs of one shape");
  out = ins[0];
  return std::make_shared<Add>();
}

// Concatenate along one Keras axis, which is kiln's axis of the same number unless the inputs
// are channels-first images held as (H, W, C).
std::shared_ptr<Module> import_concatenate(const ConfigReader& r, const json& cfg, const Where& w,
                                           const std::vector<Flow>& ins, Flow& out) {
  const int64_t axis = r.axis_of(cfg, "axis", -1, ins[0], w);
  const size_t a = static_cast<size_t>(axis - 1);
  out = ins[0];
  out.shape[a] = 0;
  for (const Flow& f : ins) {
    bool fits = f.shape.size() == ins[0].shape.size();
    for (size_t d = 0; fits && d < f.shape.size(); ++d) fits = d == a || f.shape[d] == ins[0].shape[d];
    if (!fits)
      r.fail(w.str() + " joins inputs of shapes " + shapes_of(ins) + " along axis " + std::to_string(axis) +
             "; every other extent must agree");
    out.shape[a] += f.shape[a];
  }
  static constexpr int64_t kHeldAxis[] = {0, 3, 1, 2};  // (C, H, W) held as (H, W, C): Keras axis -> kiln's
  return std::make_shared<Concatenate>(ins[0].held_nhwc ? kHeldAxis[axis] : axis);
}

const std::map<std::string, MergeImporter>& merge_importers() {
  static const std::map<std::string, MergeImporter> table = {
      {"Add", import_add},
      {"Concatenate", import_concatenate},
  };
  return table;
}

const std::map<std::string, LayerImporter>& importers() {
  static const std::map<std::string, LayerImporter> table = {
      {"Conv2D", import_conv2d},
      {"MaxPooling2D", import_pooling2d},
      {"AveragePooling2D", import_pooling2d},
      {"Flatten", import_flatten},
      {"Dense", import_dense},
      {"Dropout", import_dropout},
      {"BatchNormalization", import_batch_normalization},
      {"Activation", import_activation},
      {"ReLU", import_activation},
      {"Softmax", import_activation},
      {"Reshape", import_reshape},
      {"Permute", import_permute},
      {"GlobalAveragePooling2D", import_global_average_pooling2d},
      {"ZeroPadding2D", import_zero_padding2d},
  };
  return table;
}

}  // namespace

LayerImporter layer_importer(const std::string& class_name) {
  const auto it = importers().find(class_name);
  return it == importers().end() ? nullptr : it->second;
}

MergeImporter merge_importer(const std::string& class_name) {
  const auto it = merge_importers().find(class_name);
  return it == merge_importers().end() ? nullptr : it->second;
}

std::string importable_classes() {
  std::set<std::string> names;
  for (const auto& [name, fn] : importers()) names.insert(name);
  for (const auto& [name, fn] : merge_importers()) names.insert(name);
  std::string list;
  for (const std::string& name : names) list.append(list.empty() ? "" : ", ").append(name);
  return list;
}

}  // namespace kiln::keras
