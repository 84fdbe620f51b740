#include "layers/io/onnx/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>
#include <sstream>

#include "core/autograd.h"
#include "core/kernels/same_padding.h"
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
#include "layers/io/onnx/onnx_tensor.h"
#include "layers/max_pool2d.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "layers/sequential.h"
#include "layers/zero_padding2d.h"

namespace kiln {
namespace {

using onnx_io::Constant;
using Axes = std::vector<int64_t>;

constexpr int64_t kMinOpset = 9, kMaxOpset = 17;
// The most numbers one example may hold in any value (2^24 floats, 64 MiB: a 64-channel
// 512x512 feature map): a file that claims more is refused before anything that large is
// allocated (a 3x3 convolution's im2col of such a value already takes 9 times as much).
constexpr int64_t kMaxExampleNumbers = int64_t{1} << 24;

Axes identity(size_t rank) {
  Axes a(rank);
  std::iota(a.begin(), a.end(), int64_t{0});
  return a;
}
const Axes kNHWC = {0, 2, 3, 1};  // kiln's image layout, as ONNX (NCHW) axes

// "(N, 3, 32, 32)": a shape whose batch extent is left open shows it as N.
std::string ints_str(const std::vector<int64_t>& v, bool batch_as_n = true) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + (batch_as_n && i == 0 && v[i] == -1 ? "N" : std::to_string(v[i]));
  return s + ")";
}

// An ONNX value as the kiln graph holds it.
struct Held {
  std::string kiln;  // the Graph value (its input or a node) that holds it
  Shape shape;       // ONNX's shape of it; shape[0] is the batch (-1 when the file leaves it open)
  Axes axes;         // kiln's axis j holds ONNX's axis axes[j]; axes[0] == 0 always
  // A flattened value whose features kiln holds in another order: the flatten of a tensor of
  // ONNX shape flat_shape that kiln held with axes flat_axes. Empty: ONNX's order.
  Shape flat_shape{};
  Axes flat_axes{};
  bool plain() const { return flat_shape.empty() && axes == identity(axes.size()); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
};

// Numbers per example of an ONNX shape (its first axis the batch), saturating at 2^62.
int64_t example_numbers(const Shape& s) {
  int64_t n = 1;
  for (size_t i = 1; i < s.size(); ++i) n = s[i] > 0 && n > (int64_t{1} << 62) / s[i] ? int64_t{1} << 62 : n * std::max<int64_t>(s[i], 0);
  return n;
}

struct Pads {
  int64_t top = 0, left = 0, bottom = 0, right = 0;
  bool zero() const { return top == 0 && left == 0 && bottom == 0 && right == 0; }
  bool operator==(const Pads&) const = default;
  std::string str() const { return ints_str({top, left, bottom, right}); }
};

class Importer {
 public:
  Importer(std::string label, const OnnxImportOptions& options) : label_(std::move(label)), options_(options) {}

  LoadedModel run(const onnx::ModelProto& model);

 private:
  using OpFn = void (Importer::*)(const onnx::NodeProto&);
  static const std::map<std::string, OpFn>& ops();

  [[noreturn]] void fail(const std::string& what) const { throw FileError(label_, what); }
  [[noreturn]] void fail(const onnx::NodeProto& n, const std::string& what) const {
    fail("node '" + node_name(n) + "' (" + n.op_type() + "): " + what);
  }
  std::string node_name(const onnx::NodeProto& n) const {
    return n.name().empty() ? "#" + std::to_string(node_index_) : n.name();
  }

  // --- attributes ---
  const onnx::AttributeProto* attr(const onnx::NodeProto& n, const std::string& name) const {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  void allow_attrs(const onnx::NodeProto& n, std::initializer_list<const char*> allowed) const {
    for (const auto& a : n.attribute())
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* x) { return a.name() == x; }))
        fail(n, "attribute '" + a.name() + "' is not supported (kiln reads " +
                    (allowed.size() ? std::accumulate(std::next(allowed.begin()), allowed.end(), std::string(*allowed.begin()),
                                                      [](std::string s, const char* x) { return s + ", " + x; })
                                    : std::string("none")) +
                    " on " + n.op_type() + ")");
  }
  int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::INT) fail(n, "attribute '" + name + "' is not an integer");
    return a->i();
  }
  float attr_float(const onnx::NodeProto& n, const std::string& name, float fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::FLOAT) fail(n, "attribute '" + name + "' is not a float");
    return a->f();
  }
  std::string attr_string(const onnx::NodeProto& n, const std::string& name, const std::string& fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::STRING) fail(n, "attribute '" + name + "' is not a string");
    return a->s();
  }
  std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name, std::vector<int64_t> fallback) const {
    const auto* a = attr(n, name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::INTS) fail(n, "attribute '" + name + "' is not a list of integers");
    return {a->ints().begin(), a->ints().end()};
  }

  // --- inputs and outputs ---
  bool has_input(const onnx::NodeProto& n, int i) const { return i < n.input_size() && !n.input(i).empty(); }
  void need_inputs(const onnx::NodeProto& n, int lo, int hi) const {
    if (n.input_size() < lo || n.input_size() > hi)
      fail(n, "has " + std::to_string(n.input_size()) + " inputs; " + n.op_type() + " takes " +
                  (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)));
  }
  bool is_constant(const std::string& name) const { return constants_.count(name) > 0; }
  // Input i, computed from the model's input.
  const Held& value(const onnx::NodeProto& n, int i) const {
    if (!has_input(n, i)) fail(n, "input " + std::to_string(i) + " is missing");
    const std::string& name = n.input(i);
    if (is_constant(name))
      fail(n, "input " + std::to_string(i) + " ('" + name + "') is a constant; kiln imports " + n.op_type() +
                  " on values computed from the model's input only");
    const auto it = values_.find(name);
    if (it == values_.end())
      fail(n, "input '" + name + "' is not defined by an earlier node or the graph's input (ONNX lists nodes "
              "in topological order)");
    return it->second;
  }
  // Input i, a constant (an initializer, a Constant node's output or a bound input).
  const Constant& constant(const onnx::NodeProto& n, int i, const char* what) const {
    if (!has_input(n, i)) fail(n, std::string("input ") + std::to_string(i) + " (" + what + ") is missing");
    const auto it = constants_.find(n.input(i));
    if (it == constants_.end())
      fail(n, "input " + std::to_string(i) + " (" + what + ", '" + n.input(i) + "') is not a constant; kiln needs " +
                  what + " stored in the file (an initializer)");
    return it->second;
  }
  // The node's extra outputs (MaxPool's indices, Dropout's mask, ...) must not be used.
  void only_first_output(const onnx::NodeProto& n) const {
    for (int i = 1; i < n.output_size(); ++i)
      if (!n.output(i).empty() && uses_.count(n.output(i)))
        fail(n, "output " + std::to_string(i) + " ('" + n.output(i) + "') is used; kiln computes only the first");
  }
  void define(const onnx::NodeProto& n, Held h) {
    if (n.output_size() < 1 || n.output(0).empty()) fail(n, "has no output");
    only_first_output(n);
    if (example_numbers(h.shape) > kMaxExampleNumbers)
      fail(n, "its output " + ints_str(h.shape) + " holds more than 2^24 numbers per example; kiln refuses it");
    values_[n.output(0)] = std::move(h);
  }

  // --- kiln nodes ---
  // A Graph name from an ONNX one: letters, digits, '_' and '-' (a '/' or '.' would nest
  // datasets in a model file), unique.
  std::string fresh(const std::string& base) {
    std::string s;
    for (char c : base) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '_';
    while (!s.empty() && s.front() == '_') s.erase(s.begin());
    if (s.empty()) s = "node";
    if (s.size() > 64) s.resize(64);
    std::string name = s;
    for (int k = 1; taken_.count(name); ++k) name = s + "_" + std::to_string(k);
    taken_.insert(name);
    return name;
  }
  std::string add(const std::string& base, std::shared_ptr<Module> m, const std::vector<std::string>& inputs) {
    const std::string name = fresh(base);
    graph_->add(name, std::move(m), inputs);
    return name;
  }
  std::string base_of(const onnx::NodeProto& n) const {
    return n.name().empty() ? n.op_type() + "_" + std::to_string(node_index_) : n.name();
  }

  // The kiln value holding h with kiln axes `want` (a Permute added when they differ; a
  // flattened value in another feature order is put back in ONNX's order first).
  std::string held_as(const Held& h, const Axes& want) {
    std::string name = h.kiln;
    Axes have = h.axes;
    if (!h.flat_shape.empty()) {
      const std::string key = h.kiln + "|flat";
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        Shape kiln_shape;  // one example of the tensor that was flattened, as kiln held it
        for (size_t j = 1; j < h.flat_axes.size(); ++j) kiln_shape.push_back(h.flat_shape[h.flat_axes[j]]);
        auto seq = std::make_shared<Sequential>();
        seq->add(std::make_shared<Reshape>(kiln_shape), "reshape");
        seq->add(std::make_shared<Permute>(permute_dims(h.flat_axes, identity(h.flat_axes.size()))), "permute");
        seq->add(std::make_shared<Flatten>(), "flatten");
        it = cache_.emplace(key, add(h.kiln + "_onnx_order", seq, {h.kiln})).first;
      }
      name = it->second;
      have = identity(2);
    }
    if (have == want) return name;
    std::string key = name + "|";
    for (int64_t a : want) key += std::to_string(a);
    auto it = cache_.find(key);
    if (it == cache_.end())
      it = cache_.emplace(key, add(name + (want == kNHWC ? "_nhwc" : "_perm"),
                                   std::make_shared<Permute>(permute_dims(have, want)), {name}))
               .first;
    return it->second;
  }
  // Permute's 1-based dims taking a tensor held with axes `have` to one held with `want`.
  static std::vector<int64_t> permute_dims(const Axes& have, const Axes& want) {
    Axes where(have.size());
    for (size_t j = 0; j < have.size(); ++j) where[static_cast<size_t>(have[j])] = static_cast<int64_t>(j);
    std::vector<int64_t> dims;
    for (size_t i = 1; i < want.size(); ++i) dims.push_back(where[static_cast<size_t>(want[i])]);
    return dims;
  }
  // The ONNX row feeding kiln's input feature f of a Gemm/MatMul whose input is h.
  static std::vector<int64_t> feature_order(const Held& h) {
    const int64_t F = h.shape[1];
    std::vector<int64_t> onnx_row(static_cast<size_t>(F));
    std::iota(onnx_row.begin(), onnx_row.end(), int64_t{0});
    if (h.flat_shape.empty()) return onnx_row;
    const size_t r = h.flat_axes.size();
    Shape kiln_shape(r), onnx_stride(r);
    for (size_t j = 1; j < r; ++j) kiln_shape[j] = h.flat_shape[h.flat_axes[j]];
    int64_t st = 1;
    for (size_t i = r - 1; i >= 1; --i) {
      onnx_stride[i] = st;
      st *= h.flat_shape[i];
    }
    std::vector<int64_t> idx(r, 0);  // kiln multi-index, row-major
    for (int64_t f = 0; f < F; ++f) {
      int64_t g = 0;
      for (size_t j = 1; j < r; ++j) g += idx[j] * onnx_stride[static_cast<size_t>(h.flat_axes[j])];
      onnx_row[static_cast<size_t>(f)] = g;
      for (size_t j = r - 1; j >= 1; --j) {
        if (++idx[j] < kiln_shape[j]) break;
        idx[j] = 0;
      }
    }
    return onnx_row;
  }

  // --- shared checks ---
  Held image_input(const onnx::NodeProto& n) const {
    const Held& x = value(n, 0);
    if (x.rank() != 4)
      fail(n, "input '" + n.input(0) + "' has shape " + ints_str(x.shape) + "; " + n.op_type() +
                  " takes 4-d NCHW images in kiln (1-d and 3-d windows are not supported)");
    return x;
  }
  // kernel_shape/strides/dilations/pads/auto_pad of a 2-d window op on input H x W.
  struct Window {
    int64_t k = 1, stride = 1;
    Pads pads;
  };
  Window window(const onnx::NodeProto& n, int64_t H, int64_t W, std::vector<int64_t> kernel) const {
    if (kernel.size() != 2) fail(n, "attribute kernel_shape " + ints_str(kernel) + ": kiln takes 2-d windows");
    if (kernel[0] != kernel[1])
      fail(n, "attribute kernel_shape " + ints_str(kernel) + ": kiln takes square windows");
    const auto strides = attr_ints(n, "strides", {1, 1});
    if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1)
      fail(n, "attribute strides " + ints_str(strides) + ": kiln takes one positive stride for both axes");
    const auto dil = attr_ints(n, "dilations", {1, 1});
    if (dil != std::vector<int64_t>{1, 1}) fail(n, "attribute dilations " + ints_str(dil) + ": kiln supports (1, 1) only");
    Window w{kernel[0], strides[0], {}};
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
      const auto p = attr_ints(n, "pads", {0, 0, 0, 0});
      if (p.size() != 4 || std::any_of(p.begin(), p.end(), [](int64_t v) { return v < 0 || v > 4096; }))
        fail(n, "attribute pads " + ints_str(p) + ": expected 4 non-negative numbers");
      w.pads = {p[0], p[1], p[2], p[3]};
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      // SAME_UPPER is kiln's rule (the odd cell after); SAME_LOWER puts it before.
      const Pads same = same_pads(H, W, w.k, w.stride);
      w.pads = auto_pad == "SAME_UPPER" ? same : Pads{same.bottom, same.right, same.top, same.left};
    } else if (auto_pad != "VALID") {
      fail(n, "attribute auto_pad '" + auto_pad + "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
    }
    if (H + w.pads.top + w.pads.bottom < w.k || W + w.pads.left + w.pads.right < w.k)
      fail(n, "input " + std::to_string(H) + "x" + std::to_string(W) + " with pads " + w.pads.str() +
                  " is smaller than its window " + std::to_string(w.k) + "x" + std::to_string(w.k));
    return w;
  }
  // kiln's "same" padding (core/kernels/same_padding.h) as ONNX pads.
  static Pads same_pads(int64_t H, int64_t W, int64_t k, int64_t s) {
    const SamePadding rows = same_padding(H, k, s), cols = same_padding(W, k, s);
    return {rows.before, cols.before, rows.after, cols.after};
  }
  static int64_t out_size(int64_t in, int64_t pad, int64_t k, int64_t s, bool ceil = false) {
    return (in + pad - k + (ceil ? s - 1 : 0)) / s + 1;
  }
  // A constant's numbers as integers (shapes, pads): each whole and within +-2^40.
  std::vector<int64_t> whole_numbers(const onnx::NodeProto& n, const Constant& c, const char* what) const {
    std::vector<int64_t> out;
    for (double v : c.values) {
      if (v != std::floor(v) || std::abs(v) > 1099511627776.0) fail(n, std::string(what) + ": " + std::to_string(v) + " is not a whole number");
      out.push_back(static_cast<int64_t>(v));
    }
    return out;
  }
  Constant folded_scalar_or(const onnx::NodeProto& n, int i, const char* what, double fallback) const {
    if (!has_input(n, i)) return {{}, {fallback}};
    const Constant& c = constant(n, i, what);
    if (c.numel() != 1) fail(n, std::string(what) + " has " + std::to_string(c.numel()) + " numbers; expected one");
    return c;
  }

  // --- the ops: one function each, listed in ops() ---
  void op_conv(const onnx::NodeProto& n);
  void op_pool(const onnx::NodeProto& n);
  void op_global_average_pool(const onnx::NodeProto& n);
  void op_batch_norm(const onnx::NodeProto& n);
  void op_activation(const onnx::NodeProto& n);
  void op_softmax(const onnx::NodeProto& n);
  void op_flatten(const onnx::NodeProto& n);
  void op_gemm(const onnx::NodeProto& n);
  void op_matmul(const onnx::NodeProto& n);
  void op_add(const onnx::NodeProto& n);
  void op_concat(const onnx::NodeProto& n);
  void op_reshape(const onnx::NodeProto& n);
  void op_transpose(const onnx::NodeProto& n);
  void op_pad(const onnx::NodeProto& n);
  void op_dropout(const onnx::NodeProto& n);
  void op_identity(const onnx::NodeProto& n);
  void op_constant(const onnx::NodeProto& n);

  Held dense(const onnx::NodeProto& n, const Held& a, const std::vector<double>& kernel_in_units, int64_t K, int64_t units,
             const std::vector<double>& bias, bool awaits_bias);
  void flatten_to(const onnx::NodeProto& n, const Held& x);

  std::string label_;
  const OnnxImportOptions& options_;
  int64_t opset_ = 0;
  int node_index_ = 0;
  std::shared_ptr<Graph> graph_ = std::make_shared<Graph>();
  std::map<std::string, Held> values_;
  std::map<std::string, Constant> constants_;
  std::map<std::string, int> uses_;               // ONNX value -> how many nodes (and graph outputs) read it
  std::map<std::string, Dense*> bias_free_dense_;  // MatMul outputs whose Dense an Add may give a bias
  std::map<std::string, std::string> cache_;      // layout changes already added
  std::set<std::string> taken_;
};

const std::map<std::string, Importer::OpFn>& Importer::ops() {
  static const std::map<std::string, OpFn> table = {
      {"Conv", &Importer::op_conv},
      {"MaxPool", &Importer::op_pool},
      {"AveragePool", &Importer::op_pool},
      {"GlobalAveragePool", &Importer::op_global_average_pool},
      {"BatchNormalization", &Importer::op_batch_norm},
      {"Relu", &Importer::op_activation},
      {"Sigmoid", &Importer::op_activation},
      {"Tanh", &Importer::op_activation},
      {"Softmax", &Importer::op_softmax},
      {"Flatten", &Importer::op_flatten},
      {"Gemm", &Importer::op_gemm},
      {"MatMul", &Importer::op_matmul},
      {"Add", &Importer::op_add},
      {"Concat", &Importer::op_concat},
      {"Reshape", &Importer::op_reshape},
      {"Transpose", &Importer::op_transpose},
      {"Pad", &Importer::op_pad},
      {"Dropout", &Importer::op_dropout},
      {"Identity", &Importer::op_identity},
      {"Constant", &Importer::op_constant},
  };
  return table;
}

void Importer::op_conv(const onnx::NodeProto& n) {
  allow_attrs(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  need_inputs(n, 2, 3);
  const Held x = image_input(n);
  const Constant& w = constant(n, 1, "the weights W");
  if (w.shape.size() != 4) fail(n, "weights W have shape " + ints_str(w.shape) + "; expected [M, C, kh, kw]");
  const int64_t group = attr_int(n, "group", 1);
  if (group != 1) fail(n, "attribute group = " + std::to_string(group) + ": kiln's Conv2D has no groups (1 only)");
  const int64_t M = w.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  if (w.shape[1] != C)
    fail(n, "weights W " + ints_str(w.shape) + " take " + std::to_string(w.shape[1]) + " channels, the input " +
                ints_str(x.shape) + " has " + std::to_string(C));
  const auto kernel = attr_ints(n, "kernel_shape", {w.shape[2], w.shape[3]});
  if (kernel != std::vector<int64_t>{w.shape[2], w.shape[3]})
    fail(n, "attribute kernel_shape " + ints_str(kernel) + " disagrees with the weights " + ints_str(w.shape));
  const Window win = window(n, H, W, kernel);
  std::vector<double> bias;
  if (has_input(n, 2)) {
    const Constant& b = constant(n, 2, "the bias B");
    if (b.numel() != M) fail(n, "bias B has shape " + ints_str(b.shape) + "; expected [" + std::to_string(M) + "]");
    bias = b.values;
  }
  std::string in = held_as(x, kNHWC);
  Padding padding = Padding::Valid;
  if (win.pads == same_pads(H, W, win.k, win.stride) && !win.pads.zero()) {
    padding = Padding::Same;
  } else if (!win.pads.zero()) {  // any other padding: zeros around the image, then a valid convolution
    in = add(base_of(n) + "_pad",
             std::make_shared<ZeroPadding2D>(ZeroPadding2DOptions{win.pads.top, win.pads.bottom, win.pads.left, win.pads.right}),
             {in});
  }
  auto conv = std::make_shared<Conv2D>(Conv2DOptions{.in_channels = C, .filters = M, .kernel = static_cast<int>(win.k),
                                                     .stride = static_cast<int>(win.stride), .padding = padding,
                                                     .use_bias = !bias.empty()});
  float* k = conv->kernel().data();  // [kh,kw,C,M] from W [M,C,kh,kw]
  const int64_t kk = win.k;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < kk; ++i)
        for (int64_t j = 0; j < kk; ++j)
          k[((i * kk + j) * C + c) * M + m] = static_cast<float>(w.values[static_cast<size_t>(((m * C + c) * kk + i) * kk + j)]);
  for (size_t m = 0; m < bias.size(); ++m) conv->bias().data()[m] = static_cast<float>(bias[m]);
  const int64_t Ho = out_size(H, win.pads.top + win.pads.bottom, kk, win.stride);
  const int64_t Wo = out_size(W, win.pads.left + win.pads.right, kk, win.stride);
  define(n, {add(base_of(n), conv, {in}), {x.shape[0], M, Ho, Wo}, kNHWC});
}

void Importer::op_pool(const onnx::NodeProto& n) {
  const bool max = n.op_type() == "MaxPool";
  if (max) allow_attrs(n, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  else allow_attrs(n, {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"});
  need_inputs(n, 1, 1);
  const Held x = image_input(n);
  const int64_t H = x.shape[2], W = x.shape[3];
  if (!attr(n, "kernel_shape")) fail(n, "attribute kernel_shape is missing");
  const Window win = window(n, H, W, attr_ints(n, "kernel_shape", {}));
  const int64_t k = win.k, s = win.stride;
  const int64_t Ho = out_size(H, win.pads.top + win.pads.bottom, k, s), Wo = out_size(W, win.pads.left + win.pads.right, k, s);
  if (attr_int(n, "ceil_mode", 0) != 0 &&
      (out_size(H, win.pads.top + win.pads.bottom, k, s, true) != Ho || out_size(W, win.pads.left + win.pads.right, k, s, true) != Wo))
    fail(n, "attribute ceil_mode = 1 gives another output size than kiln's floor rounding on input " + ints_str(x.shape));
  std::string in = held_as(x, kNHWC);
  Padding padding = Padding::Valid;
  const bool include_pad = attr_int(n, "count_include_pad", 0) != 0;
  if (!win.pads.zero()) {
    if (win.pads == same_pads(H, W, k, s) && !include_pad) {
      padding = Padding::Same;  // padded cells never win a max, and kiln's mean leaves them out
    } else if (!max && include_pad) {
      in = add(base_of(n) + "_pad",
               std::make_shared<ZeroPadding2D>(ZeroPadding2DOptions{win.pads.top, win.pads.bottom, win.pads.left, win.pads.right}),
               {in});
    } else {
      fail(n, "attribute pads " + win.pads.str() + " on a " + std::to_string(H) + "x" + std::to_string(W) +
                  " input: kiln pads pooling windows only as Keras' 'same' does " + same_pads(H, W, k, s).str() +
                  (max ? "" : " (or with count_include_pad = 1)"));
    }
  }
  const MaxPool2DOptions o{.pool = static_cast<int>(k), .stride = static_cast<int>(s), .padding = padding};
  std::shared_ptr<Module> pool = max ? std::shared_ptr<Module>(std::make_shared<MaxPool2D>(o))
                                     : std::shared_ptr<Module>(std::make_shared<AvgPool2D>(o));
  define(n, {add(base_of(n), pool, {in}), {x.shape[0], x.shape[1], Ho, Wo}, kNHWC});
}

void Importer::op_global_average_pool(const onnx::NodeProto& n) {
  allow_attrs(n, {});
  need_inputs(n, 1, 1);
  const Held x = image_input(n);
  define(n, {add(base_of(n), std::make_shared<GlobalAvgPool2D>(true), {held_as(x, kNHWC)}), {x.shape[0], x.shape[1], 1, 1}, kNHWC});
}

void Importer::op_batch_norm(const onnx::NodeProto& n) {
  allow_attrs(n, {"epsilon", "momentum", "training_mode"});
  need_inputs(n, 5, 5);
  if (attr_int(n, "training_mode", 0) != 0)
    fail(n, "attribute training_mode = 1: kiln imports models for inference (batch statistics in training are kiln's own)");
  const Held x = value(n, 0);
  if (x.rank() != 4 && x.rank() != 2)
    fail(n, "input has shape " + ints_str(x.shape) + "; kiln normalises [N,C] or [N,C,H,W]");
  const int64_t C = x.shape[1];
  const char* names[] = {"", "the scale", "the bias B", "the mean", "the variance"};
  std::vector<const Constant*> p;
  for (int i = 1; i <= 4; ++i) {
    p.push_back(&constant(n, i, names[i]));
    if (p.back()->numel() != C)
      fail(n, std::string(names[i]) + " has shape " + ints_str(p.back()->shape) + "; the input " + ints_str(x.shape) +
                  " has " + std::to_string(C) + " channels");
  }
  const float eps = attr_float(n, "epsilon", 1e-5f), momentum = attr_float(n, "momentum", 0.9f);
  if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
    fail(n, "attribute epsilon " + std::to_string(eps) + " or momentum " + std::to_string(momentum) + " is out of range");
  auto bn = std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = C, .momentum = momentum, .epsilon = eps});
  Tensor* targets[] = {&bn->gamma(), &bn->beta(), &bn->moving_mean(), &bn->moving_variance()};
  for (size_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < C; ++c) targets[i]->data()[c] = static_cast<float>(p[i]->values[static_cast<size_t>(c)]);
  const Axes want = x.rank() == 4 ? kNHWC : identity(2);
  define(n, {add(base_of(n), bn, {held_as(x, want)}), x.shape, want});
}

void Importer::op_activation(const onnx::NodeProto& n) {
  allow_attrs(n, {});
  need_inputs(n, 1, 1);
  Held h = value(n, 0);
  const Activation a = n.op_type() == "Relu" ? Activation::ReLU : n.op_type() == "Sigmoid" ? Activation::Sigmoid : Activation::Tanh;
  h.kiln = add(base_of(n), std::make_shared<ActivationLayer>(a), {h.kiln});  // element-wise: any layout will do
  define(n, h);
}

void Importer::op_softmax(const onnx::NodeProto& n) {
  allow_attrs(n, {"axis"});
  need_inputs(n, 1, 1);
  Held h = value(n, 0);
  const int64_t r = h.rank();
  int64_t axis = attr_int(n, "axis", opset_ < 13 ? 1 : -1);
  if (axis < -r || axis >= r) fail(n, "attribute axis " + std::to_string(axis) + " is outside the input's " + std::to_string(r) + " axes");
  if (axis < 0) axis += r;
  if (axis == 0) fail(n, "attribute axis 0 is the batch axis; kiln takes softmax over one example's values");
  if (opset_ < 13 && axis != r - 1)
    fail(n, "attribute axis " + std::to_string(axis) + " at opset " + std::to_string(opset_) +
                " takes one softmax over axes " + std::to_string(axis) + ".." + std::to_string(r - 1) +
                " together; kiln takes it over the last axis");
  if (!h.flat_shape.empty()) {  // a softmax over all features does not mind their order
    h.kiln = add(base_of(n), Softmax(), {h.kiln});
  } else {
    Axes want = h.axes;
    if (want.back() != axis) {  // kiln's softmax runs over its last axis: make that the ONNX axis
      want = identity(static_cast<size_t>(r));
      want.erase(want.begin() + axis);
      want.push_back(axis);
    }
    h.kiln = add(base_of(n), Softmax(), {held_as(h, want)});
    h.axes = want;
  }
  define(n, h);
}

void Importer::flatten_to(const onnx::NodeProto& n, const Held& x) {
  if (x.rank() == 2) {  // already [N, F]
    define(n, x);
    return;
  }
  Held out{add(base_of(n), std::make_shared<Flatten>(), {x.kiln}), {x.shape[0], shape_numel(Shape(x.shape.begin() + 1, x.shape.end()))},
           identity(2)};
  if (x.axes != identity(x.axes.size())) {
    out.flat_shape = x.shape;
    out.flat_axes = x.axes;
  }
  define(n, out);
}

void Importer::op_flatten(const onnx::NodeProto& n) {
  allow_attrs(n, {"axis"});
  need_inputs(n, 1, 1);
  const Held x = value(n, 0);
  int64_t axis = attr_int(n, "axis", 1);
  if (axis < 0) axis += x.rank();
  if (axis != 1)
    fail(n, "attribute axis " + std::to_string(attr_int(n, "axis", 1)) + ": kiln flattens each example (axis 1) only");
  flatten_to(n, x);
}

Held Importer::dense(const onnx::NodeProto& n, const Held& a, const std::vector<double>& kernel, int64_t K, int64_t units,
                     const std::vector<double>& bias, bool awaits_bias) {
  auto d = std::make_shared<Dense>(DenseOptions{.in_features = K, .units = units, .use_bias = true});
  const std::vector<int64_t> row = feature_order(a);  // kiln's feature f reads ONNX row row[f]
  float* kp = d->kernel().data();
  for (int64_t f = 0; f < K; ++f)
    for (int64_t u = 0; u < units; ++u)
      kp[f * units + u] = static_cast<float>(kernel[static_cast<size_t>(row[static_cast<size_t>(f)] * units + u)]);
  for (int64_t u = 0; u < units; ++u) d->bias().data()[u] = bias.empty() ? 0.0f : static_cast<float>(bias[static_cast<size_t>(u)]);
  const std::string in = a.flat_shape.empty() ? held_as(a, identity(2)) : a.kiln;
  Held out{add(base_of(n), d, {in}), {a.shape[0], units}, identity(2)};
  if (awaits_bias) bias_free_dense_[n.output(0)] = d.get();
  return out;
}

void Importer::op_gemm(const onnx::NodeProto& n) {
  allow_attrs(n, {"alpha", "beta", "transA", "transB"});
  need_inputs(n, 2, 3);
  const Held a = value(n, 0);
  if (attr_int(n, "transA", 0) != 0) fail(n, "attribute transA = 1: kiln multiplies the input as it comes (transA = 0)");
  if (a.rank() != 2) fail(n, "input A has shape " + ints_str(a.shape) + "; Gemm takes [N, K]");
  const Constant& b = constant(n, 1, "the weights B");
  const bool tb = attr_int(n, "transB", 0) != 0;
  if (b.shape.size() != 2) fail(n, "weights B have shape " + ints_str(b.shape) + "; expected 2 axes");
  const int64_t K = tb ? b.shape[1] : b.shape[0], units = tb ? b.shape[0] : b.shape[1];
  if (K != a.shape[1])
    fail(n, "input A " + ints_str(a.shape) + " has " + std::to_string(a.shape[1]) + " features, weights B " + ints_str(b.shape) +
                (tb ? " (transB = 1)" : "") + " take " + std::to_string(K));
  const double alpha = attr_float(n, "alpha", 1.0f), beta = attr_float(n, "beta", 1.0f);
  std::vector<double> kernel(static_cast<size_t>(K * units));  // [K, units]
  for (int64_t f = 0; f < K; ++f)
    for (int64_t u = 0; u < units; ++u)
      kernel[static_cast<size_t>(f * units + u)] = alpha * b.values[static_cast<size_t>(tb ? u * K + f : f * units + u)];
  std::vector<double> bias;
  if (has_input(n, 2)) {
    const Constant& c = constant(n, 2, "the bias C");
    if (c.numel() != units && c.numel() != 1)
      fail(n, "bias C has shape " + ints_str(c.shape) + "; kiln takes one bias per output, [" + std::to_string(units) + "]");
    bias.resize(static_cast<size_t>(units));
    for (int64_t u = 0; u < units; ++u) bias[static_cast<size_t>(u)] = beta * c.values[c.numel() == 1 ? 0 : static_cast<size_t>(u)];
  }
  define(n, dense(n, a, kernel, K, units, bias, /*awaits_bias=*/false));
}

void Importer::op_matmul(const onnx::NodeProto& n) {
  allow_attrs(n, {});
  need_inputs(n, 2, 2);
  const Held a = value(n, 0);
  if (a.rank() != 2) fail(n, "input A has shape " + ints_str(a.shape) + "; kiln's MatMul takes [N, K] times constant [K, M]");
  const Constant& b = constant(n, 1, "the weights B");
  if (b.shape.size() != 2 || b.shape[0] != a.shape[1])
    fail(n, "input A " + ints_str(a.shape) + " times weights B " + ints_str(b.shape) + ": expected B of shape [" +
                std::to_string(a.shape[1]) + ", M]");
  // A MatMul's bias, where it has one, comes in the Add after it (op_add).
  define(n, dense(n, a, b.values, b.shape[0], b.shape[1], {}, /*awaits_bias=*/true));
}

void Importer::op_add(const onnx::NodeProto& n) {
  allow_attrs(n, {});
  need_inputs(n, 2, 2);
  for (int i = 0; i < 2; ++i) {
    if (!is_constant(n.input(i))) continue;
    // value + constant: the bias of a MatMul (as exporters write a Linear layer), nothing else.
    const Held& v = value(n, 1 - i);
    const Constant& c = constant(n, i, "the bias");
    const auto it = bias_free_dense_.find(n.input(1 - i));
    const int64_t units = v.rank() == 2 ? v.shape[1] : -1;
    if (it == bias_free_dense_.end() || uses_[n.input(1 - i)] != 1 || (c.numel() != units && c.numel() != 1) ||
        c.shape.size() > 2)
      fail(n, "adds the constant '" + n.input(i) + "' " + ints_str(c.shape) + " to a value of shape " + ints_str(v.shape) +
                  "; kiln imports a constant Add only as the bias right after a MatMul");
    for (int64_t u = 0; u < units; ++u)
      it->second->bias().data()[u] += static_cast<float>(c.values[c.numel() == 1 ? 0 : static_cast<size_t>(u)]);
    bias_free_dense_.erase(it);
    define(n, v);
    return;
  }
  const Held a = value(n, 0), b = value(n, 1);
  const auto same_extents = [](const Shape& x, const Shape& y) {
    return x.size() == y.size() && std::equal(x.begin() + 1, x.end(), y.begin() + 1);
  };
  if (!same_extents(a.shape, b.shape))
    fail(n, "adds shapes " + ints_str(a.shape) + " and " + ints_str(b.shape) + "; kiln adds tensors of one shape (no broadcasting)");
  Held out = a;
  std::string ka = a.kiln, kb;
  if (a.flat_shape == b.flat_shape && a.flat_axes == b.flat_axes && a.axes == b.axes) {
    kb = b.kiln;
  } else if (!a.flat_shape.empty() || !b.flat_shape.empty()) {
    ka = held_as(a, identity(2));
    kb = held_as(b, identity(2));
    out.flat_shape.clear();
    out.flat_axes.clear();
  } else {
    kb = held_as(b, a.axes);
  }
  out.kiln = add(base_of(n), std::make_shared<Add>(), {ka, kb});
  define(n, out);
}

void Importer::op_concat(const onnx::NodeProto& n) {
  allow_attrs(n, {"axis"});
  if (n.input_size() < 1) fail(n, "has no inputs");
  if (!attr(n, "axis")) fail(n, "attribute axis is missing");
  std::vector<Held> xs;
  for (int i = 0; i < n.input_size(); ++i) xs.push_back(value(n, i));
  if (xs.size() == 1) {
    define(n, xs[0]);
    return;
  }
  const int64_t r = xs[0].rank();
  int64_t axis = attr_int(n, "axis", 0);
  if (axis < -r || axis >= r) fail(n, "attribute axis " + std::to_string(axis) + " is outside the inputs' " + std::to_string(r) + " axes");
  if (axis < 0) axis += r;
  if (axis == 0) fail(n, "attribute axis 0 joins along the batch axis; kiln joins the axes of each example");
  Shape shape = xs[0].shape;
  shape[static_cast<size_t>(axis)] = 0;
  const bool any_flat = std::any_of(xs.begin(), xs.end(), [](const Held& h) { return !h.flat_shape.empty(); });
  const Axes want = any_flat ? identity(static_cast<size_t>(r)) : xs[0].axes;
  std::vector<std::string> ins;
  for (const Held& h : xs) {
    for (int64_t d = 1; d < r; ++d)
      if (h.rank() != r || (d != axis && h.shape[static_cast<size_t>(d)] != xs[0].shape[static_cast<size_t>(d)]))
        fail(n, "inputs of shapes " + ints_str(xs[0].shape) + " and " + ints_str(h.shape) + " do not agree off axis " +
                    std::to_string(axis));
    shape[static_cast<size_t>(axis)] += h.shape[static_cast<size_t>(axis)];
    ins.push_back(held_as(h, want));
  }
  const int64_t kiln_axis = std::find(want.begin(), want.end(), axis) - want.begin();
  define(n, {add(base_of(n), std::make_shared<Concatenate>(kiln_axis), ins), shape, want});
}

void Importer::op_reshape(const onnx::NodeProto& n) {
  allow_attrs(n, {"allowzero"});
  need_inputs(n, 2, 2);
  const Held x = value(n, 0);
  const Constant& s = constant(n, 1, "the shape");
  if (s.shape.size() != 1 || s.numel() < 1) fail(n, "shape input " + ints_str(s.shape) + " is not a list of extents");
  const bool allowzero = attr_int(n, "allowzero", 0) != 0;
  std::vector<int64_t> target;
  for (size_t i = 0; i < s.values.size(); ++i) {
    const double v = s.values[i];
    if (v != std::floor(v) || v < -1 || v > 1e12) fail(n, "shape input holds " + std::to_string(v) + ", not an extent");
    int64_t e = static_cast<int64_t>(v);
    if (e == 0 && !allowzero) {
      if (i >= x.shape.size()) fail(n, "shape entry " + std::to_string(i) + " is 0 (copy) but the input has only " + std::to_string(x.rank()) + " axes");
      e = i == 0 ? -2 : x.shape[i];  // -2: the batch, kept
    } else if (e == 0) {
      fail(n, "shape " + ints_str(std::vector<int64_t>(s.values.begin(), s.values.end()), false) + " has a zero extent with allowzero = 1");
    }
    target.push_back(e);
  }
  // The first entry must keep the batch: 0, -1 (with the rest fixed), or the batch size the file fixes.
  const Shape per_example(target.begin() + 1, target.end());
  const int64_t unknown = std::count(per_example.begin(), per_example.end(), int64_t{-1});
  const int64_t numel = shape_numel(Shape(x.shape.begin() + 1, x.shape.end()));
  const bool keeps_batch = target[0] == -2 || (target[0] == -1 && unknown == 0 && shape_numel(per_example) == numel) ||
                           (target[0] > 0 && target[0] == x.shape[0]);
  if (!keeps_batch || unknown > 1)
    fail(n, "shape " + ints_str(std::vector<int64_t>(s.values.begin(), s.values.end()), false) + " on input " + ints_str(x.shape) +
                ": kiln reshapes each example and keeps the batch axis first (0, -1 or the batch size, then the example's extents)");
  int64_t known = 1;
  for (int64_t e : per_example) known *= e == -1 ? 1 : e;
  Shape out = per_example;
  for (int64_t& e : out)
    if (e == -1) e = known > 0 && numel % known == 0 ? numel / known : -3;
  if (shape_numel(out) != numel || std::count(out.begin(), out.end(), int64_t{-3}))
    fail(n, "shape " + ints_str(std::vector<int64_t>(s.values.begin(), s.values.end()), false) + " does not hold the " + std::to_string(numel) + " numbers of an example of " + ints_str(x.shape));
  if (out.size() == 1) {  // a flatten: kiln's Flatten keeps any feature order for the next Gemm
    flatten_to(n, x);
    return;
  }
  Shape full = {x.shape[0]};
  full.insert(full.end(), out.begin(), out.end());
  define(n, {add(base_of(n), std::make_shared<Reshape>(out), {held_as(x, identity(x.axes.size()))}), full, identity(full.size())});
}

void Importer::op_transpose(const onnx::NodeProto& n) {
  allow_attrs(n, {"perm"});
  need_inputs(n, 1, 1);
  Held x = value(n, 0);
  const int64_t r = x.rank();
  Axes rev(static_cast<size_t>(r));
  for (int64_t i = 0; i < r; ++i) rev[static_cast<size_t>(i)] = r - 1 - i;
  const Axes perm = attr_ints(n, "perm", rev);
  Axes sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  if (sorted != identity(static_cast<size_t>(r))) fail(n, "attribute perm " + ints_str(perm) + " is not a permutation of the input's " + std::to_string(r) + " axes");
  if (perm[0] != 0) fail(n, "attribute perm " + ints_str(perm) + " moves the batch axis; kiln keeps it first");
  // Nothing to compute: kiln's tensor stays as it is, and its axes are relabelled.
  Axes where(static_cast<size_t>(r));
  for (int64_t i = 0; i < r; ++i) where[static_cast<size_t>(perm[static_cast<size_t>(i)])] = i;
  Held out = x;
  for (int64_t i = 0; i < r; ++i) out.shape[static_cast<size_t>(i)] = x.shape[static_cast<size_t>(perm[static_cast<size_t>(i)])];
  if (x.flat_shape.empty())
    for (auto& a : out.axes) a = where[static_cast<size_t>(a)];
  define(n, out);
}

void Importer::op_pad(const onnx::NodeProto& n) {
  allow_attrs(n, {"mode", "pads", "value"});
  need_inputs(n, 1, opset_ < 11 ? 1 : 3);
  const Held x = image_input(n);
  if (attr_string(n, "mode", "constant") != "constant")
    fail(n, "attribute mode '" + attr_string(n, "mode", "") + "': kiln pads with zeros (mode 'constant') only");
  std::vector<int64_t> pads;
  double fill = attr_float(n, "value", 0.0f);
  if (opset_ < 11) {
    pads = attr_ints(n, "pads", {});
  } else {
    pads = whole_numbers(n, constant(n, 1, "the pads"), "the pads");
    fill = folded_scalar_or(n, 2, "the constant value", 0.0).values[0];
  }
  if (fill != 0.0) fail(n, "pads with " + std::to_string(fill) + "; kiln pads with zeros only");
  if (pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5] ||
      std::any_of(pads.begin(), pads.end(), [](int64_t v) { return v < 0 || v > 4096; }))
    fail(n, "pads " + ints_str(pads) + ": kiln pads the height and width of images (non-negative) only");
  auto pad = std::make_shared<ZeroPadding2D>(ZeroPadding2DOptions{pads[2], pads[6], pads[3], pads[7]});
  define(n, {add(base_of(n), pad, {held_as(x, kNHWC)}),
             {x.shape[0], x.shape[1], x.shape[2] + pads[2] + pads[6], x.shape[3] + pads[3] + pads[7]}, kNHWC});
}

void Importer::op_dropout(const onnx::NodeProto& n) {
  allow_attrs(n, {"ratio", "seed", "is_test"});
  need_inputs(n, 1, 3);
  Held h = value(n, 0);
  double rate = attr_float(n, "ratio", 0.5f);
  if (opset_ >= 12) rate = folded_scalar_or(n, 1, "the ratio", 0.5).values[0];
  if (has_input(n, 2) && constant(n, 2, "training_mode").values[0] != 0)
    fail(n, "input training_mode is true: kiln imports models for inference");
  if (!(rate >= 0.0 && rate < 1.0)) fail(n, "ratio " + std::to_string(rate) + " is outside [0, 1)");
  if (rate > 0.0) h.kiln = add(base_of(n), std::make_shared<Dropout>(static_cast<float>(rate)), {h.kiln});
  define(n, h);  // an identity in inference; kept as a layer so the model trains as it was built
}

void Importer::op_identity(const onnx::NodeProto& n) {
  allow_attrs(n, {});
  need_inputs(n, 1, 1);
  if (is_constant(n.input(0))) {
    only_first_output(n);
    constants_[n.output(0)] = constants_.at(n.input(0));
    return;
  }
  define(n, value(n, 0));
}

void Importer::op_constant(const onnx::NodeProto& n) {
  if (n.attribute_size() != 1) fail(n, "has " + std::to_string(n.attribute_size()) + " attributes; a Constant holds exactly one");
  const onnx::AttributeProto& a = n.attribute(0);
  Constant c;
  if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) {
    try {
      c = onnx_io::to_constant(a.t());
    } catch (const std::runtime_error& e) {
      fail(n, std::string("attribute value: ") + e.what());
    }
  } else if (a.name() == "value_float" && a.type() == onnx::AttributeProto::FLOAT) {
    c = {{}, {a.f()}};
  } else if (a.name() == "value_int" && a.type() == onnx::AttributeProto::INT) {
    c = {{}, {static_cast<double>(a.i())}};
  } else if (a.name() == "value_floats" && a.type() == onnx::AttributeProto::FLOATS) {
    c = {{a.floats_size()}, {a.floats().begin(), a.floats().end()}};
  } else if (a.name() == "value_ints" && a.type() == onnx::AttributeProto::INTS) {
    c = {{a.ints_size()}, {}};
    for (int64_t v : a.ints()) c.values.push_back(static_cast<double>(v));
  } else {
    fail(n, "attribute '" + a.name() + "' is not supported (kiln reads value, value_float(s), value_int(s))");
  }
  if (n.output_size() != 1 || n.output(0).empty()) fail(n, "has no output");
  constants_[n.output(0)] = std::move(c);
}

LoadedModel Importer::run(const onnx::ModelProto& model) {
  // Protobuf reads almost any short byte string as some message: a model without a graph is
  // no ONNX model at all (an empty file, a text file).
  if (!model.has_graph() || model.graph().node_size() == 0)
    fail("not an ONNX model: the bytes hold no graph of nodes");
  // The opset of the default domain.
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = o.version();
  if (opset_ == 0) fail("the model imports no opset of the default ONNX domain");
  if (opset_ < kMinOpset || opset_ > kMaxOpset)
    fail("opset " + std::to_string(opset_) + "; kiln reads opsets " + std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) +
         " (re-export the model with one of them, e.g. torch.onnx.export(..., opset_version=13))");
  const onnx::GraphProto& g = model.graph();

  for (const auto& t : g.initializer()) {
    try {
      constants_[t.name()] = onnx_io::to_constant(t);
    } catch (const std::runtime_error& e) {
      fail("initializer '" + t.name() + "': " + e.what());
    }
  }
  for (const auto& [name, t] : options_.constants) {
    Constant c{t.shape(), {}};
    const float* p = t.data();
    c.values.assign(p, p + t.numel());
    constants_[name] = std::move(c);
  }
  // The inputs computed on: the graph's inputs that are not initializers or bound.
  std::vector<Shape> input_shapes;
  std::vector<std::string> input_names;
  for (const auto& in : g.input()) {
    if (is_constant(in.name())) continue;
    if (values_.count(in.name())) fail("input '" + in.name() + "' is listed twice");
    if (!in.type().has_tensor_type() || in.type().tensor_type().elem_type() != onnx::TensorProto_DataType_FLOAT)
      fail("input '" + in.name() + "' is not a float32 tensor; kiln computes on float32 tensors");
    Shape shape;
    for (const auto& d : in.type().tensor_type().shape().dim()) {
      if (shape.empty()) {
        shape.push_back(d.has_dim_value() && d.dim_value() > 0 ? d.dim_value() : -1);
        continue;
      }
      if (!d.has_dim_value() || d.dim_value() < 1 || d.dim_value() > (int64_t{1} << 24))
        fail("input '" + in.name() + "': axis " + std::to_string(shape.size()) + " is '" + d.dim_param() +
             "'; kiln needs every extent but the batch's fixed");
      shape.push_back(d.dim_value());
    }
    if (shape.size() < 2 || shape.size() > 6)
      fail("input '" + in.name() + "' has " + std::to_string(shape.size()) + " axes; kiln takes a batch axis and 1 to 5 more");
    if (example_numbers(shape) > kMaxExampleNumbers)
      fail("input '" + in.name() + "' " + ints_str(shape) + " holds more than 2^24 numbers per example; kiln refuses it");
    input_names.push_back(fresh(in.name()));
    graph_->input(input_names.back());
    values_[in.name()] = {input_names.back(), shape, identity(shape.size())};
    input_shapes.emplace_back(shape.begin() + 1, shape.end());
  }
  if (input_shapes.empty()) fail("the graph has no input besides its weights: there is nothing to compute on");

  for (const auto& n : g.node())
    for (const auto& i : n.input()) ++uses_[i];
  for (const auto& o : g.output()) ++uses_[o.name()];

  for (const auto& n : g.node()) {
    if (!n.domain().empty() && n.domain() != "ai.onnx")
      fail(n, "domain '" + n.domain() + "' is not ONNX's default domain; kiln imports its ops only");
    const auto it = ops().find(n.op_type());
    if (it == ops().end()) {
      std::string known;
      for (const auto& [op, fn] : ops()) known += (known.empty() ? "" : ", ") + op;
      fail(n, "op " + n.op_type() + " is not supported (kiln imports " + known + ")");
    }
    for (const auto& o : n.output())
      if (!o.empty() && (values_.count(o) || constants_.count(o))) fail(n, "output '" + o + "' is defined twice");
    (this->*(it->second))(n);
    ++node_index_;
  }

  if (g.output_size() != 1) fail("the graph has " + std::to_string(g.output_size()) + " outputs; kiln imports models with one output");
  const std::string& out = g.output(0).name();
  const auto it = values_.find(out);
  if (it == values_.end()) fail("the graph's output '" + out + "' is not computed from its input");
  std::string last = held_as(it->second, identity(it->second.axes.size()));
  if (std::count(input_names.begin(), input_names.end(), last))  // the output is an input as it came: a Graph needs one node
    last = add("output", std::make_shared<Reshape>(Shape(it->second.shape.begin() + 1, it->second.shape.end())), {last});
  graph_->output(last);

  LoadedModel m;
  m.model = graph_;
  m.input_shape = input_shapes[0];
  if (input_shapes.size() > 1) m.input_shapes = input_shapes;
  m.name = g.name().empty() ? "model" : g.name();
  m.format = "onnx";
  m.producer = (model.producer_name().empty() ? std::string("producer not stated") : model.producer_name()) +
               (model.producer_version().empty() ? "" : " " + model.producer_version()) + ", opset " + std::to_string(opset_);
  // The bookkeeping above follows ONNX's shapes; running the model once makes sure kiln's
  // layers agree before anyone relies on it.
  graph_->eval();
  if (input_shapes.size() == 1) {
    check_model_runs(*graph_, m.input_shape, label_);
  } else {
    std::vector<Tensor> zeros;
    for (const Shape& s : input_shapes) {
      Shape batch = {1};
      batch.insert(batch.end(), s.begin(), s.end());
      zeros.push_back(Tensor::zeros(batch));
    }
    NoGradGuard no_grad;
    try {
      graph_->forward_many(zeros);
    } catch (const std::invalid_argument& e) {
      fail(std::string("the model does not run in kiln: ") + e.what());
    }
  }
  return m;
}

}  // namespace

LoadedModel import_onnx_bytes(std::string_view bytes, const std::string& label, const OnnxImportOptions& options) {
  if (bytes.size() > (size_t{1} << 31) - 1) throw FileError(label, "larger than the 2 GB an ONNX protobuf can be");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw FileError(label, "not an ONNX model: the bytes do not parse as an ONNX ModelProto (protobuf)");
  try {
    return Importer(label, options).run(model);
  } catch (const FileError&) {
    throw;
  } catch (const std::invalid_argument& e) {  // a kiln layer refusing what the bookkeeping let through
    throw FileError(label, std::string("the model does not build in kiln: ") + e.what());
  }
}

namespace {
std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileError(path, "cannot open for reading");
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) throw FileError(path, "read error");
  return s.str();
}
}  // namespace

LoadedModel import_onnx(const std::string& path, const OnnxImportOptions& options) {
  return import_onnx_bytes(read_all(path), path, options);
}

Tensor read_onnx_tensor(const std::string& path) {
  const std::string bytes = read_all(path);
  onnx::TensorProto t;
  if (!t.ParseFromString(bytes)) throw FileError(path, "not an ONNX TensorProto (protobuf does not parse)");
  try {
    return onnx_io::to_tensor(onnx_io::to_constant(t));
  } catch (const std::runtime_error& e) {
    throw FileError(path, e.what());
  }
}

}  // namespace kiln
