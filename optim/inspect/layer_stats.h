// Per-layer health figures, the ones "A Recipe for Training Neural Networks" and CS231n ask
// to look at: what each layer outputs (mean, spread, share of exact zeros: dead ReLUs) and,
// for one training batch, how large its weights' gradients are and how large a plain SGD
// step would be next to the weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "layers/module.h"

namespace kiln {

struct LayerStats {
  std::string name, type;
  Shape output_shape;  // for the batch
  double mean = 0, stddev = 0, zero_fraction = 0;  // of the layer's outputs (inference mode)
  int64_t parameters = 0;                          // the layer's own weights (0: none)
  double weight_norm = 0, grad_norm = 0;           // L2 over them; gradient of the batch's loss
  double update_ratio = 0;                         // learning_rate * grad_norm / weight_norm
};

// Runs batch.x through the model in inference mode for the output figures, then once in
// training mode (dropout and batch statistics as in a training step; softmax cross-entropy
// on the logits, or binary cross-entropy for one output) for the gradients. The model is
// left as it was: mode, weights, batch-norm statistics, and no gradients kept.
std::vector<LayerStats> layer_statistics(Module& model, const Batch& batch, double learning_rate = 1e-3);

// "layer,type,output_shape,mean,std,zero_fraction,parameters,weight_norm,grad_norm,update_ratio",
// written atomically.
void write_layer_stats_csv(const std::string& path, const std::vector<LayerStats>& stats);

}  // namespace kiln
