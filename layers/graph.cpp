#include "layers/graph.h"

#include <algorithm>

namespace kiln {

namespace {
std::string quoted_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", '" : "'") + names[i] + "'";
  return s;
}
}  // namespace

int64_t Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (inputs_[i] == name) return static_cast<int64_t>(i);
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == name) return static_cast<int64_t>(inputs_.size() + i);
  return -1;
}

Graph& Graph::input(const std::string& name) {
  check_arg(!name.empty(), "Graph", "an input needs a name");
  check_arg(find_value(name) < 0, "Graph", "the name '" + name + "' is taken already");
  check_arg(nodes_.empty(), "Graph", "input '" + name + "' must be declared before the first node");
  inputs_.push_back(name);
  return *this;
}

Graph& Graph::add(const std::string& name, std::shared_ptr<Module> module, const std::vector<std::string>& inputs) {
  const std::string at = "node '" + name + "'";
  check_arg(!name.empty(), "Graph", "a node needs a name");
  check_arg(module != nullptr, "Graph", at + " has no module");
  check_arg(find_value(name) < 0, "Graph", at + ": the name is taken already");
  for (const Node& n : nodes_)
    check_arg(n.module != module, "Graph",
              at + " reuses the module of node '" + n.name + "'; a module can be one node only (shared layers are not supported)");
  check_arg(!inputs.empty(), "Graph", at + " takes no input");
  std::vector<int64_t> numbers;
  for (const std::string& in : inputs) {
    const int64_t v = find_value(in);
    check_arg(v >= 0, "Graph",
              at + " takes '" + in + "', which is neither an input nor a node added before it" +
                  (inputs_.empty() ? " (the graph has no input yet: call input() first)" : ""));
    numbers.push_back(v);
  }
  if (module->joins_inputs())
    check_arg(inputs.size() >= 2, "Graph",
              at + " (" + module->type_name() + ") joins two or more inputs, got " + quoted_list(inputs));
  else
    check_arg(inputs.size() == 1, "Graph",
              at + " (" + module->type_name() + ") takes one input, got " + quoted_list(inputs));
  add_child(name, module);
  nodes_.push_back({name, std::move(module), inputs});
  node_inputs_.push_back(std::move(numbers));
  return *this;
}

Graph& Graph::output(const std::string& name) {
  const int64_t v = find_value(name);
  check_arg(v >= static_cast<int64_t>(inputs_.size()), "Graph", "output '" + name + "' is not a node of the graph");
  output_ = v - static_cast<int64_t>(inputs_.size());
  return *this;
}

int64_t Graph::output_node() const { return output_ >= 0 ? output_ : static_cast<int64_t>(nodes_.size()) - 1; }

std::string Graph::output_name() const {
  return nodes_.empty() ? "" : nodes_[static_cast<size_t>(output_node())].name;
}

std::vector<bool> Graph::needed() const {
  std::vector<bool> need(nodes_.size(), false);
  if (nodes_.empty()) return need;
  need[static_cast<size_t>(output_node())] = true;
  const int64_t first_node = static_cast<int64_t>(inputs_.size());
  for (size_t i = nodes_.size(); i-- > 0;)
    if (need[i])
      for (int64_t v : node_inputs_[i])
        if (v >= first_node) need[static_cast<size_t>(v - first_node)] = true;
  return need;
}

bool Graph::output_is_read() const {
  const int64_t out = static_cast<int64_t>(inputs_.size()) + output_node();
  for (const auto& ins : node_inputs_)
    if (std::find(ins.begin(), ins.end(), out) != ins.end()) return true;
  return false;
}

Tensor Graph::run(const std::vector<Tensor>& xs, bool logits, std::vector<Tensor>* values) {
  check_arg(!inputs_.empty(), "Graph", "the graph has no input (declare one with input())");
  check_arg(!nodes_.empty(), "Graph", "the graph has no node");
  check_arg(xs.size() == inputs_.size(), "Graph",
            "the graph takes " + std::to_string(inputs_.size()) + " input(s) (" + quoted_list(inputs_) + "), got " +
                std::to_string(xs.size()));
  std::vector<Tensor> v(inputs_.size() + nodes_.size());
  std::copy(xs.begin(), xs.end(), v.begin());
  const std::vector<bool> need = needed();
  const size_t out = static_cast<size_t>(output_node());
  const bool out_logits = logits && ends_in_softmax();
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!need[i]) continue;
    std::vector<Tensor> in;
    for (int64_t k : node_inputs_[i]) in.push_back(v[static_cast<size_t>(k)]);
    Module& m = *nodes_[i].module;
    Tensor& y = v[inputs_.size() + i];
    try {
      y = i == out && out_logits ? m.forward_logits(in[0]) : m.forward_many(in);
    } catch (const std::invalid_argument& e) {
      // Name the node: a shape error deep in a graph is otherwise hard to place.
      throw std::invalid_argument("Graph: node '" + nodes_[i].name + "' (" + m.type_name() + "): " + e.what());
    }
  }
  Tensor result = v[inputs_.size() + out];
  if (values) *values = std::move(v);
  return result;
}

Tensor Graph::forward(const Tensor& x) { return run({x}, false, nullptr); }
Tensor Graph::forward_many(const std::vector<Tensor>& xs) { return run(xs, false, nullptr); }
Tensor Graph::forward_logits(const Tensor& x) { return run({x}, true, nullptr); }

bool Graph::ends_in_softmax() const {
  if (nodes_.empty()) return false;
  const Node& n = nodes_[static_cast<size_t>(output_node())];
  return n.inputs.size() == 1 && !output_is_read() && n.module->ends_in_softmax();
}

std::vector<std::pair<std::string, Tensor>> Graph::run_all(const std::vector<Tensor>& xs) {
  std::vector<Tensor> v;
  run(xs, false, &v);
  std::vector<std::pair<std::string, Tensor>> named;
  for (size_t i = 0; i < inputs_.size(); ++i) named.emplace_back(inputs_[i], v[i]);
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (v[inputs_.size() + i].defined()) named.emplace_back(nodes_[i].name, v[inputs_.size() + i]);
  return named;
}

}  // namespace kiln
