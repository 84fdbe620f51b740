// Re-estimating batch-norm moving statistics after (or during) training, "precise BN".
//
// Why: in training, BatchNormalization normalises with each batch's statistics and keeps an
// exponential moving average (momentum 0.99) for inference. With heavy augmentation (Task 3
// turns, shifts, flips and brightens every patch) that average describes augmented images and
// the weights of ~100 steps ago, not the clean images the model is evaluated on; the gap shows
// as validation figures that jump from one evaluation to the next. Re-estimating the
// statistics on clean training images, with the current weights, removes that gap.
#pragma once

#include <cstdint>

#include "data/batch_source.h"
#include "data/dataset.h"
#include "layers/module.h"

namespace kiln {

struct BatchNormRecalibration {
  int64_t layers = 0;   // BatchNorm2d modules found in the model
  int64_t batches = 0;  // batches run
  int64_t images = 0;   // images seen
};

// Replaces the moving mean and variance of every BatchNorm2d in `model` (found recursively)
// with the statistics of its input over `batches` batches of `batch_size` clean (unaugmented)
// images drawn from `data` without replacement in an order fixed by `seed` (fewer batches
// when data has fewer images): the mean over all those images and pixels, and the variance
// around it (biased, as Keras' batch statistics are).
//
// How: the model runs in inference mode (dropout off) except its batch-norm layers, which run
// in training mode so that each layer normalises with its batch statistics, as in training,
// and reports them through its moving statistics. Before each batch those are zeroed, so after
// the forward pass they hold (1 - momentum) x the batch statistics; the layer's momentum is
// measured once by a forward pass over a constant input. The per-batch figures are combined in
// double into the exact pooled mean and variance, so the result does not depend on the
// momentum or on the batch order. Runs under NoGradGuard; the model's training flag is
// restored afterwards. x: [N,H,W,C] images as the model takes them.
// Throws std::invalid_argument for batches or batch_size < 1, an empty dataset, or a layer whose
// momentum is 1 (its statistics never move, so they cannot be measured this way).
BatchNormRecalibration recalibrate_batch_norm(Module& model, const Dataset& data, int64_t batches,
                                              int64_t batch_size, uint64_t seed = 0);

// The same over the first `batches` batches of epoch `epoch` of any batch source (a Batcher,
// or a StreamingDataset for a training split too large for memory); the source's own batch
// size, seed and order apply. The Dataset form above is this one over
// Batcher(data, batch_size, seed) at epoch 0.
BatchNormRecalibration recalibrate_batch_norm(Module& model, BatchSource& source, int64_t batches,
                                              int64_t epoch = 0);

}  // namespace kiln
