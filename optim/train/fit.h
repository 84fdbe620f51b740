// The training loop: fit() trains a model with an optimizer over shuffled mini-batches, one
// train_step() (train_step.h) per batch,
// evaluate() and predict() run it in inference mode in batches. Keras' semantics: the
// per-epoch training figures are running means over the epoch's batches (with dropout and
// augmentation active, and the regularisation penalty included in the loss); validation runs
// in inference mode every `validation_freq` epochs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"
#include "layers/module.h"
#include "optim/optimizer.h"
#include "optim/train/train_step.h"

namespace kiln {

class Augmentation;
class Communicator;

struct Evaluation {
  double loss = 0, accuracy = 0, auc = 0;
  int64_t n = 0;
};

struct EpochLog;

struct FitOptions {
  int64_t epochs = 1;
  int64_t batch_size = 32;
  // Steps per epoch; 0: one pass over the training data. Fewer than a pass: each epoch takes
  // the first steps_per_epoch batches of its order (Keras' steps_per_epoch, e.g. to train on a
  // file too large for whole epochs).
  int64_t steps_per_epoch = 0;
  bool shuffle = true;
  const Dataset* validation = nullptr;  // optional
  int64_t validation_freq = 1;          // validate after epochs freq, 2*freq, ... (and never else)
  uint64_t seed = 0;                    // batch order and augmentation draws
  bool quiet = false;                   // no progress output
  bool auc = false;                     // also report ROC AUC (binary problems: class 1 is positive)
  const Augmentation* augmentation = nullptr;  // applied to each training batch
  // The training loss (train_step.h). Empty: softmax cross-entropy on the model's logits,
  // for a model that ends in softmax or one that outputs logits. Validation (evaluate) reports
  // categorical cross-entropy either way; set `validate` for another figure.
  LossFunction loss{};
  // Called before each epoch (0-based), e.g. for a learning-rate schedule.
  std::function<void(int64_t epoch, Optimizer& optimizer)> on_epoch_begin{};
  // Called after each training step: the 0-based epoch, the 1-based step in it, its figures.
  std::function<void(int64_t epoch, int64_t step, const StepResult& result)> on_batch_end{};
  // Called after each epoch with its log (validation included), before its checkpoint.
  std::function<void(const EpochLog& log)> on_epoch_end{};
  // Replaces the default validation (evaluate() on *validation) at validation epochs, e.g. to
  // re-estimate batch-norm statistics first; gets the 1-based epoch just finished. With it set,
  // `validation` may be null.
  std::function<Evaluation(int64_t epoch)> validate{};
  // Checkpoints (optim/checkpoint.h). With checkpoint_path set, fit writes the whole training
  // state there after every checkpoint_every-th epoch (0: only the last) and after the last
  // epoch, storing checkpoint_note with it.
  std::string checkpoint_path{};
  int64_t checkpoint_every = 0;
  std::string checkpoint_note{};
  // With resume and an existing checkpoint at checkpoint_path: restore it and continue after
  // its epoch. The result is bit-identical to a run that never stopped (same seed and thread
  // count). A checkpoint of all epochs returns its history without training.
  bool resume = false;
  // Asked after every training step (one process only; ignored with several ranks): true
  // stops training there, e.g. from a SIGTERM handler's flag. With checkpoint_path set, fit
  // first writes a checkpoint of that moment (mid-epoch: resuming skips the batches done
  // and continues bit-identically); then it returns the history with `stopped` set.
  std::function<bool()> stop_requested{};
  // Data-parallel training over several processes (optim/distributed.h); null or a
  // communicator of size 1: this process alone. With several ranks, every rank calls fit with
  // the same data and options; each computes its shard of every global batch of batch_size
  // rows, gradients are averaged before each step, and only rank 0 prints progress, validates
  // and writes checkpoints (the History returned on other ranks has no validation figures).
  // Resuming reads checkpoint_path on every rank (a path all ranks see).
  Communicator* communicator = nullptr;
  // With a communicator of several ranks: batch-norm layers (BatchNorm2d) normalise each
  // training batch with the statistics of the whole global batch, summed over the ranks in
  // the forward and backward pass (PyTorch's SyncBatchNorm), instead of each rank's shard's
  // own. Costs three small allreduces per layer and step; every batch needs at least one
  // row per rank. The moving statistics then follow the global batch, as in one process.
  bool sync_batch_norm = false;
  // Not empty: fit writes a TensorBoard event file in this directory (optim/report/
  // tensorboard.h; created if missing, rank 0 only). After each epoch, step = the 1-based
  // epoch: scalars loss, accuracy (auc), learning_rate (the optimizer's), and at validation
  // epochs val_loss, val_accuracy (val_auc) and the image "curves", the training-curves plot
  // of the history so far (optim/report/plot_history.h). A resumed run adds a new file.
  std::string tensorboard_dir{};
};

// The training steps an epoch of `batches` batches takes under `steps_per_epoch` (FitOptions':
// 0 for all of them).
inline int64_t steps_in_epoch(int64_t steps_per_epoch, int64_t batches) {
  return steps_per_epoch > 0 && steps_per_epoch < batches ? steps_per_epoch : batches;
}

struct EpochLog {
  int64_t epoch = 0;  // 1-based
  double loss = 0, accuracy = 0, auc = 0;
  bool validated = false;
  double val_loss = 0, val_accuracy = 0, val_auc = 0;
  double seconds = 0;
};

struct History {
  std::vector<EpochLog> epochs;
  bool has_auc = false;
  // Set when FitOptions::stop_requested stopped training: after `stopped_step` steps of
  // epoch `stopped_epoch` (1-based); `epochs` holds only the finished epochs.
  bool stopped = false;
  int64_t stopped_epoch = 0, stopped_step = 0;
  // epoch,loss,accuracy[,auc],val_loss,val_accuracy[,val_auc],seconds; validation cells
  // empty in epochs without validation. Written to a temporary file and renamed into place.
  void write_csv(const std::string& path) const;
};


History fit(Module& model, Optimizer& optimizer, const Dataset& train, const FitOptions& options);
// The same over any batch source (data/batch_source.h), e.g. a StreamingDataset; its batch
// size must be options.batch_size, and its own seed and shuffle setting order the batches
// (options.seed still seeds the augmentation).
History fit(Module& model, Optimizer& optimizer, BatchSource& train, const FitOptions& options);
// Inference-mode loss (categorical cross-entropy on the softmax output, or on the softmax of
// the output for a model that does not end in softmax), accuracy and
// optionally AUC over the whole dataset. Restores the model's training mode afterwards.
Evaluation evaluate(Module& model, const Dataset& data, int64_t batch_size = 256, bool auc = false);
// The same over one epoch of a labelled batch source.
Evaluation evaluate(Module& model, BatchSource& data, bool auc = false);
// x: [N,...] -> the model's outputs [N,K] (probabilities for a softmax model), in batches.
Tensor predict(Module& model, const Tensor& x, int64_t batch_size = 256);
// One epoch of a batch source -> the outputs [rows,K], row i for the source's row i.
Tensor predict(Module& model, BatchSource& data);

}  // namespace kiln
