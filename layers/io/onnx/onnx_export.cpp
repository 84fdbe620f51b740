#include "layers/io/onnx/onnx_export.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/autograd.h"
#include "core/kernels/same_padding.h"
#include "core/io/file_error.h"
#include "core/io/write_atomically.h"
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

constexpr int64_t kOpset = 13;
constexpr int64_t kIrVersion = 7;  // the IR version of opset 13

// A kiln value as the ONNX graph holds it.
struct Value {
  std::string name;  // the ONNX value
  Tensor example;    // kiln's value for one example: its shape, and the next layer's input
  bool nchw = false; // a 4-d NHWC kiln tensor that the ONNX graph holds as NCHW
};

class Exporter {
 public:
  Exporter(std::string label, onnx::GraphProto& g) : label_(std::move(label)), g_(g) {}

  Value emit(Module& m, const std::string& path, const std::vector<Value>& ins);

  std::string plain(const Value& v) {  // the value in kiln's own axis order
    return v.nchw ? transpose(v.name, {0, 2, 3, 1}, "nhwc") : v.name;
  }
  std::string nchw(const Value& v) {
    if (v.nchw) return v.name;
    if (v.example.dim() != 4) throw FileError(label_, "'" + v.name + "' has shape " + shape_str(v.example.shape()) + "; an image layer needs 4 axes");
    return transpose(v.name, {0, 3, 1, 2}, "nchw");
  }

 private:
  std::string fresh(const std::string& base) {
    std::string name = base.empty() ? "value" : base;
    for (int k = 1; taken_.count(name); ++k) name = base + "_" + std::to_string(k);
    taken_.insert(name);
    return name;
  }
  onnx::NodeProto& node(const std::string& op, const std::string& name, const std::vector<std::string>& ins,
                        const std::string& out) {
    onnx::NodeProto& n = *g_.add_node();
    n.set_op_type(op);
    n.set_name(name);
    for (const auto& i : ins) n.add_input(i);
    n.add_output(out);
    return n;
  }
  static void set(onnx::NodeProto& n, const std::string& key, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void set(onnx::NodeProto& n, const std::string& key, float v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void set(onnx::NodeProto& n, const std::string& key, const std::vector<int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  std::string weight(const std::string& name, const Tensor& t) {
    const std::string n = fresh(name);
    onnx_io::set_float_tensor(*g_.add_initializer(), n, t.shape(), t.data());
    return n;
  }
  std::string ints(const std::string& name, const std::vector<int64_t>& v) {
    const std::string n = fresh(name);
    onnx_io::set_int64_tensor(*g_.add_initializer(), n, v);
    return n;
  }
  std::string transpose(const std::string& in, const std::vector<int64_t>& perm, const char* suffix) {
    const std::string key = in + "|" + suffix;
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const std::string out = fresh(in + "_" + suffix);
    set(node("Transpose", out, {in}, out), "perm", perm);
    return cache_[key] = out;
  }
  // kiln's padding (core/kernels/same_padding.h) as ONNX pads (top, left, bottom, right) for a
  // window k, stride s on the NHWC example x.
  static std::vector<int64_t> pads_of(const Tensor& x, int64_t k, int64_t s, Padding p) {
    if (p == Padding::Valid) return {0, 0, 0, 0};
    const SamePadding rows = same_padding(x.size(1), k, s), cols = same_padding(x.size(2), k, s);
    return {rows.before, cols.before, rows.after, cols.after};
  }
  // An activation after a conv or dense layer.
  std::string activation(Activation a, const std::string& in, const std::string& path, bool nchw) {
    if (a == Activation::Linear) return in;
    const char* op = a == Activation::ReLU ? "Relu" : a == Activation::Sigmoid ? "Sigmoid" : a == Activation::Tanh ? "Tanh" : "Softmax";
    const std::string out = fresh(path + "_" + activation_name(a));
    onnx::NodeProto& n = node(op, out, {in}, out);
    if (a == Activation::Softmax) set(n, "axis", nchw ? int64_t{1} : int64_t{-1});  // kiln: over channels, its last axis
    return out;
  }

  std::string label_;
  onnx::GraphProto& g_;
  std::set<std::string> taken_;
  std::map<std::string, std::string> cache_;
};

Value Exporter::emit(Module& m, const std::string& path, const std::vector<Value>& ins) {
  if (auto* s = dynamic_cast<Sequential*>(&m)) {
    Value v = ins.at(0);
    for (const auto& [name, child] : s->named_children()) v = emit(*child, path.empty() ? name : path + "." + name, {v});
    return v;
  }
  if (auto* gr = dynamic_cast<Graph*>(&m)) {
    std::map<std::string, Value> values;
    for (size_t i = 0; i < gr->input_names().size(); ++i) values[gr->input_names()[i]] = ins.at(i);
    for (const Graph::Node& n : gr->nodes()) {
      std::vector<Value> node_ins;
      for (const auto& in : n.inputs) node_ins.push_back(values.at(in));
      values[n.name] = emit(*n.module, path.empty() ? n.name : path + "." + n.name, node_ins);
    }
    return values.at(gr->output_name());
  }

  // One layer: its kiln output for the example, then its ONNX nodes.
  std::vector<Tensor> xs;
  for (const Value& v : ins) xs.push_back(v.example);
  Value out{"", xs.size() == 1 ? m.forward(xs[0]) : m.forward_many(xs), false};
  const Tensor& x = xs[0];
  const std::string name = fresh(path);
  out.name = name;

  if (auto* c = dynamic_cast<Conv2D*>(&m)) {
    const Conv2DOptions& o = c->options();
    const Tensor& k = c->kernel();  // [kh,kw,C,F] -> [F,C,kh,kw]
    const int64_t K = k.size(0), C = k.size(2), F = k.size(3);
    Tensor w = Tensor::empty({F, C, K, K});
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j)
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t f = 0; f < F; ++f) w.data()[((f * C + ch) * K + i) * K + j] = k.data()[((i * K + j) * C + ch) * F + f];
    std::vector<std::string> in = {nchw(ins[0]), weight(name + ".weight", w)};
    if (o.use_bias) in.push_back(weight(name + ".bias", c->bias()));
    onnx::NodeProto& n = node("Conv", name, in, name);
    set(n, "kernel_shape", std::vector<int64_t>{K, K});
    set(n, "strides", std::vector<int64_t>{o.stride, o.stride});
    set(n, "pads", pads_of(x, K, o.stride, o.padding));
    out.name = activation(o.activation, name, name, true);
    out.nchw = true;
  } else if (auto* d = dynamic_cast<Dense*>(&m)) {
    if (x.dim() != 2) throw FileError(label_, "module '" + path + "' (Dense) gets " + shape_str(x.shape()) + "; ONNX's Gemm takes [N, K]");
    std::vector<std::string> in = {plain(ins[0]), weight(name + ".weight", d->kernel())};
    if (d->options().use_bias) in.push_back(weight(name + ".bias", d->bias()));
    node("Gemm", name, in, name);
    out.name = activation(d->options().activation, name, name, false);
  } else if (dynamic_cast<MaxPool2D*>(&m) || dynamic_cast<AvgPool2D*>(&m)) {
    const bool max = dynamic_cast<MaxPool2D*>(&m) != nullptr;
    const MaxPool2DOptions& o = max ? dynamic_cast<MaxPool2D*>(&m)->options() : dynamic_cast<AvgPool2D*>(&m)->options();
    onnx::NodeProto& n = node(max ? "MaxPool" : "AveragePool", name, {nchw(ins[0])}, name);
    set(n, "kernel_shape", std::vector<int64_t>{o.pool, o.pool});
    set(n, "strides", std::vector<int64_t>{o.stride, o.stride});
    set(n, "pads", pads_of(x, o.pool, o.stride, o.padding));
    if (!max) set(n, "count_include_pad", int64_t{0});
    out.nchw = true;
  } else if (auto* gp = dynamic_cast<GlobalAvgPool2D*>(&m)) {
    const std::string pooled = gp->keepdims() ? name : fresh(name + "_pool");
    node("GlobalAveragePool", pooled, {nchw(ins[0])}, pooled);
    if (!gp->keepdims()) set(node("Flatten", name, {pooled}, name), "axis", int64_t{1});
    out.nchw = gp->keepdims();
  } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) {
    if (x.dim() != 4 && x.dim() != 2)
      throw FileError(label_, "module '" + path + "' (BatchNormalization) gets " + shape_str(x.shape()) +
                                  "; ONNX normalises axis 1, which is kiln's channel axis for [N,H,W,C] and [N,C] only");
    onnx::NodeProto& n = node("BatchNormalization", name,
                              {x.dim() == 4 ? nchw(ins[0]) : plain(ins[0]), weight(name + ".scale", bn->gamma()),
                               weight(name + ".bias", bn->beta()), weight(name + ".mean", bn->moving_mean()),
                               weight(name + ".var", bn->moving_variance())},
                              name);
    set(n, "epsilon", bn->options().epsilon);
    set(n, "momentum", bn->options().momentum);
    out.nchw = x.dim() == 4;
  } else if (dynamic_cast<Flatten*>(&m)) {
    set(node("Flatten", name, {plain(ins[0])}, name), "axis", int64_t{1});
  } else if (auto* r = dynamic_cast<Reshape*>(&m)) {
    std::vector<int64_t> shape = {0};  // 0: the batch extent, copied
    shape.insert(shape.end(), r->target().begin(), r->target().end());
    node("Reshape", name, {plain(ins[0]), ints(name + ".shape", shape)}, name);
  } else if (auto* p = dynamic_cast<Permute*>(&m)) {
    std::vector<int64_t> perm = {0};
    perm.insert(perm.end(), p->dims().begin(), p->dims().end());
    set(node("Transpose", name, {plain(ins[0])}, name), "perm", perm);
  } else if (auto* a = dynamic_cast<ActivationLayer*>(&m)) {
    out.name = activation(a->activation(), ins[0].name, name, ins[0].nchw);
    out.nchw = ins[0].nchw;
  } else if (auto* dr = dynamic_cast<Dropout*>(&m)) {
    node("Dropout", name, {ins[0].name, weight(name + ".ratio", Tensor::scalar(dr->rate()))}, name);
    out.nchw = ins[0].nchw;
  } else if (dynamic_cast<Add*>(&m)) {
    const bool all_nchw = std::all_of(ins.begin(), ins.end(), [](const Value& v) { return v.nchw; });
    std::string sum = all_nchw ? ins[0].name : plain(ins[0]);
    for (size_t i = 1; i < ins.size(); ++i) {
      const std::string o = i + 1 == ins.size() ? name : fresh(name + "_" + std::to_string(i));
      node("Add", o, {sum, all_nchw ? ins[i].name : plain(ins[i])}, o);
      sum = o;
    }
    out.nchw = all_nchw;
  } else if (auto* cat = dynamic_cast<Concatenate*>(&m)) {
    const int64_t r = x.dim();
    const int64_t axis = cat->axis() < 0 ? cat->axis() + r : cat->axis();
    const bool all_nchw = std::all_of(ins.begin(), ins.end(), [](const Value& v) { return v.nchw; });
    std::vector<std::string> in;
    for (const Value& v : ins) in.push_back(all_nchw ? v.name : plain(v));
    const int64_t nchw_axis[] = {0, 2, 3, 1};  // kiln's N,H,W,C as ONNX's NCHW axes
    set(node("Concat", name, in, name), "axis", all_nchw ? nchw_axis[axis] : axis);
    out.nchw = all_nchw;
  } else if (auto* zp = dynamic_cast<ZeroPadding2D*>(&m)) {
    const ZeroPadding2DOptions& o = zp->options();
    node("Pad", name, {nchw(ins[0]), ints(name + ".pads", {0, 0, o.top, o.left, 0, 0, o.bottom, o.right})}, name);  // zeros: the default mode
    out.nchw = true;
  } else {
    throw FileError(label_, "cannot export module '" + path + "' of type " + m.type_name() +
                                " to ONNX (kiln exports Conv2D, Dense, MaxPooling2D, AveragePooling2D, "
                                "GlobalAveragePooling2D, BatchNormalization, Flatten, Reshape, Permute, activations, "
                                "Dropout, Add, Concatenate, ZeroPadding2D, and Sequentials and Graphs of them)");
  }
  return out;
}

void set_shape(onnx::ValueInfoProto& v, const std::string& name, const Shape& per_example) {
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param("N");
  for (int64_t d : per_example) t->mutable_shape()->add_dim()->set_dim_value(d);
}

}  // namespace

std::string export_onnx_bytes(const Module& model, const Shape& input_shape, const std::string& name, const std::string& label) {
  auto& m = const_cast<Module&>(model);  // forward() is not const; the training mode is restored below
  const bool was_training = m.is_training();
  m.eval();
  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  proto.set_producer_name("kiln");
  proto.set_producer_version(KILN_VERSION_STRING);
  auto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  onnx::GraphProto& g = *proto.mutable_graph();
  g.set_name(name);
  try {
    NoGradGuard no_grad;
    Exporter e(label, g);
    Shape batch = {1};
    batch.insert(batch.end(), input_shape.begin(), input_shape.end());
    set_shape(*g.add_input(), "input", input_shape);
    const Value out = e.emit(m, "", {{"input", Tensor::zeros(batch), false}});
    const std::string result = e.plain(out);
    set_shape(*g.add_output(), result, Shape(out.example.shape().begin() + 1, out.example.shape().end()));
  } catch (const std::invalid_argument& err) {
    m.train(was_training);
    throw FileError(label, std::string("the model does not run on input ") + shape_str(input_shape) + ": " + err.what());
  } catch (...) {
    m.train(was_training);
    throw;
  }
  m.train(was_training);
  return proto.SerializeAsString();
}

void export_onnx(const std::string& path, const Module& model, const Shape& input_shape, const std::string& name) {
  write_bytes_atomically(path, export_onnx_bytes(model, input_shape, name, path));
}

}  // namespace kiln
