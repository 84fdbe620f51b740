// train_step: one optimizer step on one batch, the unit fit() loops over. Public so that a
// hand-written loop (a custom schedule, logging, gradient inspection) trains exactly as fit
// does:
//
//   Batcher batcher(train, 32, seed);
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     batcher.start_epoch(epoch);
//     while (batcher.next()) {
//       const StepResult r = train_step(model, optimizer, batcher.batch());
//       ...
//     }
//   }
//
// gives the same weights, bit for bit, as fit() with the same seed, batch size and epochs
// (no augmentation; with it, augment the batch before the step as fit does).
#pragma once

#include <cstdint>
#include <functional>

#include "core/tensor.h"
#include "data/dataset.h"
#include "layers/module.h"
#include "optim/optimizer.h"

namespace kiln {

class DataParallel;

// A loss: the model's output for a batch and that batch -> a scalar tensor to minimise.
using LossFunction = std::function<Tensor(const Tensor& output, const Batch& batch)>;

// The default loss, softmax cross-entropy on logits (PyTorch's CrossEntropyLoss): the output
// is the model's logits (Module::forward_logits, which skips a final softmax layer, so a
// model that ends in softmax trains on the fused, stable form).
Tensor softmax_cross_entropy_loss(const Tensor& logits, const Batch& batch);

struct TrainStepOptions {
  // Empty: softmax_cross_entropy_loss on model.forward_logits(x). Set: loss(model.forward(x),
  // batch). The model's regularisation penalty (Module::regularization_loss) is added either way.
  LossFunction loss;
  // Data-parallel training (optim/train/distributed/data_parallel.h): this rank computes its
  // shard of the batch and the gradients are those of the whole batch. Null: this process alone.
  DataParallel* parallel = nullptr;
};

struct StepResult {
  double loss = 0;      // the batch's mean loss with the penalty, over every rank's rows
  double loss_sum = 0;  // the loss times the rows, summed over the ranks (loss = loss_sum / rows)
  int64_t correct = 0;  // rows whose arg-max output is the label, over every rank
  int64_t rows = 0;     // rows in the batch, over every rank
  Tensor output;        // this rank's output (logits with the default loss); undefined if no rows
  double accuracy() const { return rows > 0 ? static_cast<double>(correct) / rows : 0.0; }
};

// Zeroes the gradients, runs the model on the batch in its current mode (fit() sets
// training mode), back-propagates the loss and takes one optimizer step.
StepResult train_step(Module& model, Optimizer& optimizer, const Batch& batch,
                      const TrainStepOptions& options = {});

}  // namespace kiln
