// Running a model one layer at a time: every layer's output by name, and the same run with
// one layer's output replaced. Sequentials and Graphs (also nested) are opened up; any other
// module is one layer. What the inspection pictures are made from: feature maps and layer
// statistics read the outputs, Grad-CAM and its finite-difference check replace one.
#pragma once

#include <string>
#include <vector>

#include "layers/module.h"

namespace kiln {

struct TracedLayer {
  std::string name;  // dotted, as in named_parameters(): "block1.conv2d_1", a Graph's node names
  Module* module;
  Tensor output;
};

struct Trace {
  std::vector<TracedLayer> layers;  // in the order they ran
  Tensor output;                    // the model's output (its logits with TraceOptions::logits)
};

struct TraceOptions {
  // With a layer named: its output is not computed but taken to be `replacement` (same
  // shape), and everything after it is computed from that.
  std::string replace_layer{};
  Tensor replacement{};
  // The output before a final softmax, as Module::forward_logits gives it.
  bool logits = false;
};

// x: a batch as model->forward takes it. Runs in the model's current mode. Throws
// std::invalid_argument naming replace_layer when no layer has that name, or when the
// replacement's shape is not the layer's.
Trace trace_layers(Module& model, const Tensor& x, const TraceOptions& options = {});

}  // namespace kiln
