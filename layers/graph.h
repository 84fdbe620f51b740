// Graph: a model whose layers form a directed acyclic graph, Keras' functional model. Each
// node applies one module to the outputs of earlier nodes or of the graph's inputs; a node
// that joins several (Add, Concatenate: layers/merge.h) takes two or more. Residual
// connections and branches are written as they are drawn:
//
//   auto g = std::make_shared<Graph>();
//   g->input("image");
//   g->add("conv1", conv1, {"image"});
//   g->add("conv2", conv2, {"conv1"});
//   g->add("sum", std::make_shared<Add>(), {"conv1", "conv2"});   // the shortcut joins here
//   g->add("head", head, {"sum"});                                 // the last node is the output
//
// A node may only name what is defined before it, so a graph is acyclic by construction and
// its nodes run in the order they were added. Autograd needs nothing special: a tensor used
// by two nodes receives the gradient of both. The nodes are the graph's sub-modules under
// their node names, so parameters read "conv1.kernel" and model files save a Graph like any
// other model (layers/io/model_file.h).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"

namespace kiln {

class Graph : public Module {
 public:
  struct Node {
    std::string name;
    std::shared_ptr<Module> module;
    std::vector<std::string> inputs;  // graph inputs or earlier nodes, in the order the module takes them
  };

  // Declares an input. A graph with one input is a Module like any other (forward(x)); one
  // with several takes them in declaration order through forward_many.
  Graph& input(const std::string& name);
  // Adds a node. std::invalid_argument naming the graph, the node and the problem when the
  // name is taken, an input is not defined yet, the module is already a node (shared layers
  // are not supported), or the number of inputs does not fit the module.
  Graph& add(const std::string& name, std::shared_ptr<Module> module, const std::vector<std::string>& inputs);
  // Names the node whose output the graph returns; by default the last node added.
  Graph& output(const std::string& name);

  Tensor forward(const Tensor& x) override;
  Tensor forward_many(const std::vector<Tensor>& xs) override;
  bool joins_inputs() const override { return inputs_.size() > 1; }
  // The output node's logits when its module ends in a softmax and no other node reads it.
  Tensor forward_logits(const Tensor& x) override;
  bool ends_in_softmax() const override;
  std::string type_name() const override { return "Graph"; }

  const std::vector<std::string>& input_names() const { return inputs_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  // The output node's name; empty while the graph has no node.
  std::string output_name() const;

  // Runs the graph and returns every value it computed by name (the inputs, then each node
  // the output depends on, in order): what summary and feature-map pictures read.
  std::vector<std::pair<std::string, Tensor>> run_all(const std::vector<Tensor>& xs);

 private:
  // Values are numbered inputs first, then nodes: value i >= inputs_.size() is node i - inputs_.size().
  int64_t find_value(const std::string& name) const;
  int64_t output_node() const;
  std::vector<bool> needed() const;  // per node: does the output depend on it
  bool output_is_read() const;       // does another node take the output node's value
  Tensor run(const std::vector<Tensor>& xs, bool logits, std::vector<Tensor>* values);

  std::vector<std::string> inputs_;
  std::vector<Node> nodes_;
  std::vector<std::vector<int64_t>> node_inputs_;  // per node, value numbers of its inputs
  int64_t output_ = -1;                             // a node number; -1: the last one
};

}  // namespace kiln
