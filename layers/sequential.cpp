#include "layers/sequential.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/autograd.h"
#include "layers/activation.h"
#include "layers/batch_norm2d.h"
#include "layers/graph.h"

namespace kiln {

namespace {
std::string snake_case(const std::string& type) {
  std::string s;
  for (size_t i = 0; i < type.size(); ++i) {
    const char c = type[i];
    if (std::isupper(static_cast<unsigned char>(c)) && i > 0 &&
        !std::isupper(static_cast<unsigned char>(type[i - 1])) && !std::isdigit(static_cast<unsigned char>(type[i - 1])))
      s += '_';
    s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}
}  // namespace

Sequential& Sequential::add(std::shared_ptr<Module> module, const std::string& name) {
  std::string n = name;
  if (n.empty()) {
    const std::string base = snake_case(module->type_name());
    int same = 0;
    for (const auto& [child, m] : named_children())
      if (child == base || child.rfind(base + "_", 0) == 0) ++same;
    n = same ? base + "_" + std::to_string(same) : base;
  }
  add_child(n, module);
  layers_.push_back(std::move(module));
  return *this;
}

namespace {

// The batch norm of a BatchNormalization directly followed by a ReLU layer, which then run as
// one op (batch_norm_relu); null for any other pair.
BatchNorm2d* fuses_with_relu(const std::vector<std::shared_ptr<Module>>& layers, size_t i) {
  if (i + 1 >= layers.size()) return nullptr;
  const auto* act = dynamic_cast<const ActivationLayer*>(layers[i + 1].get());
  if (act == nullptr || act->activation() != Activation::ReLU) return nullptr;
  return dynamic_cast<BatchNorm2d*>(layers[i].get());
}

}  // namespace

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (BatchNorm2d* bn = fuses_with_relu(layers_, i)) {
      h = bn->forward_relu(h);
      ++i;
    } else {
      h = layers_[i]->forward(h);
    }
  }
  return h;
}

Tensor Sequential::forward_logits(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (BatchNorm2d* bn = fuses_with_relu(layers_, i)) {
      h = bn->forward_relu(h);  // a ReLU layer's forward_logits is its forward
      ++i;
    } else {
      h = i + 1 == layers_.size() ? layers_[i]->forward_logits(h) : layers_[i]->forward(h);
    }
  }
  return h;
}

bool Sequential::ends_in_softmax() const { return !layers_.empty() && layers_.back()->ends_in_softmax(); }

namespace {

struct Row {
  std::string name, type, shape;
  int64_t params;
  std::string connected = "";  // a graph node's inputs (Keras' "Connected to")
};

std::string group_digits(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string shape_text(const Tensor& y) {
  Shape s = y.shape();
  s[0] = -1;
  std::string shape = "(None";
  for (size_t i = 1; i < s.size(); ++i) shape.append(", ").append(std::to_string(s[i]));
  return shape + ")";
}

std::string type_text(const Module& m) {
  std::string type = m.type_name();
  if (const std::string d = m.describe(); !d.empty()) type.append(" ").append(d);
  return type;
}

// The leaves under m, with their parameter counts and no output shape ("?").
void list_unrun(const Module& m, const std::string& name, std::vector<Row>& rows) {
  const auto children = m.named_children();
  if (children.empty()) {
    rows.push_back({name, type_text(m), "?", m.count_trainable() + m.count_non_trainable()});
    return;
  }
  int64_t in_children = 0;
  for (const auto& [child_name, child] : children) {
    list_unrun(*child, name + "." + child_name, rows);
    in_children += child->count_trainable() + child->count_non_trainable();
  }
  if (const int64_t own = m.count_trainable() + m.count_non_trainable() - in_children; own > 0)
    rows.push_back({name, m.type_name(), "?", own});
}

Tensor walk(Module& m, const std::string& name, const Tensor& x, std::vector<Row>& rows);

std::string joined(const std::string& prefix, const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s.append(s.empty() ? "" : ", ").append(prefix).append(n);
  return s;
}

// A graph's inputs (at the top) and nodes in the order they run, each with what feeds it.
Tensor walk_graph(Graph& g, const std::string& name, const Tensor& x, std::vector<Row>& rows) {
  const std::string prefix = name.empty() ? "" : name + ".";
  std::vector<std::pair<std::string, Tensor>> values = {{g.input_names().at(0), x}};
  if (name.empty()) rows.push_back({g.input_names()[0], "InputLayer", shape_text(x), 0});
  auto value_of = [&](const std::string& n) {
    for (const auto& [vn, v] : values)
      if (vn == n) return v;
    throw std::logic_error("summary: graph value '" + n + "' was not computed");
  };
  const std::vector<std::pair<std::string, Tensor>> computed = g.run_all({x});
  for (const Graph::Node& node : g.nodes()) {
    const bool ran = std::any_of(computed.begin(), computed.end(), [&](const auto& c) { return c.first == node.name; });
    if (!ran) continue;  // not on the way to the output
    const size_t first = rows.size();
    Tensor y;
    if (node.inputs.size() == 1) {
      y = walk(*node.module, prefix + node.name, value_of(node.inputs[0]), rows);
    } else {
      std::vector<Tensor> in;
      for (const std::string& i : node.inputs) in.push_back(value_of(i));
      y = node.module->forward_many(in);
      rows.push_back({prefix + node.name, type_text(*node.module), shape_text(y),
                      node.module->count_trainable() + node.module->count_non_trainable()});
    }
    if (first < rows.size()) rows[first].connected = joined(prefix, node.inputs);
    values.emplace_back(node.name, y);
  }
  return value_of(g.output_name());
}

// Runs x through `m`, one leaf layer at a time, recording each leaf's output shape.
Tensor walk(Module& m, const std::string& name, const Tensor& x, std::vector<Row>& rows) {
  if (auto* g = dynamic_cast<Graph*>(&m); g != nullptr && g->input_names().size() == 1)
    return walk_graph(*g, name, x, rows);
  if (auto* seq = dynamic_cast<Sequential*>(&m)) {
    Tensor h = x;
    const auto children = seq->named_children();
    for (size_t i = 0; i < children.size(); ++i)
      h = walk(*children[i].second, name.empty() ? children[i].first : name + "." + children[i].first, h, rows);
    return h;
  }
  Tensor y = m.forward(x);
  const auto children = m.named_children();
  if (!children.empty()) {
    // A composite module of the user's own: its forward decides how the children connect, so
    // they are listed, each with its parameters, without output shapes, and the module's own
    // row after them carries its output shape.
    int64_t in_children = 0;
    for (const auto& [child_name, child] : children) {
      list_unrun(*child, name.empty() ? child_name : name + "." + child_name, rows);
      in_children += child->count_trainable() + child->count_non_trainable();
    }
    rows.push_back({name.empty() ? "(output)" : name, m.type_name(), shape_text(y),
                    m.count_trainable() + m.count_non_trainable() - in_children});
    return y;
  }
  rows.push_back({name, type_text(m), shape_text(y), m.count_trainable() + m.count_non_trainable()});
  return y;
}

}  // namespace

std::string summary(Module& model, const Shape& input, const std::string& title) {
  // A batch of one zero image, run in inference mode without building a graph.
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  Shape batch_shape = {1};
  batch_shape.insert(batch_shape.end(), input.begin(), input.end());
  std::vector<Row> rows;
  walk(model, "", Tensor::zeros(batch_shape), rows);
  model.train(was_training);

  size_t w_name = 20, w_shape = 18, w_connected = 0;
  for (const Row& r : rows) {
    w_name = std::max(w_name, r.name.size() + r.type.size() + 3);
    w_shape = std::max(w_shape, r.shape.size());
    w_connected = std::max(w_connected, r.connected.size());
  }
  // The "Connected to" column only for graphs, as Keras prints it only for functional models.
  if (w_connected > 0) w_connected = std::max<size_t>(w_connected, 12) + 2;
  const size_t width = w_name + w_shape + 16 + w_connected;
  std::ostringstream os;
  if (!title.empty()) os << "Model: \"" << title << "\"\n";
  os << std::string(width, '=') << "\n";
  auto print_row = [&](const std::string& layer, const std::string& shape, const std::string& params,
                       const std::string& connected) {
    std::string line = layer;
    line.resize(std::max(line.size(), w_name), ' ');
    line.append(" ").append(shape);
    line.resize(std::max(line.size(), w_name + 1 + w_shape), ' ');
    line.append(std::string(params.size() < 13 ? 13 - params.size() : 1, ' ')).append(params);
    if (w_connected > 0) line.append("  ").append(connected);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
  };
  print_row("Layer (type)", "Output Shape", "Param #", w_connected > 0 ? "Connected to" : "");
  os << std::string(width, '-') << "\n";
  for (const Row& r : rows) print_row(r.name + " (" + r.type + ")", r.shape, group_digits(r.params), r.connected);
  const int64_t trainable = model.count_trainable(), fixed = model.count_non_trainable();
  os << std::string(width, '=') << "\n";
  os << "Total params: " << group_digits(trainable + fixed) << "\n";
  os << "Trainable params: " << group_digits(trainable) << "\n";
  os << "Non-trainable params: " << group_digits(fixed) << "\n";
  return os.str();
}

}  // namespace kiln
