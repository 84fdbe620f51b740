// DataParallel: what one training step and one epoch need from data-parallel training, in one
// object, so that fit() and train_step() stay single-process code with a few calls into it.
//
// Built by fit() from FitOptions::communicator (several ranks) and passed to every
// train_step() through TrainStepOptions::parallel. A hand-written loop over train_step can do
// the same: construct it, call start() once, give it to each step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "optim/optimizer.h"
#include "optim/train/distributed/distributed.h"

namespace kiln {

class BatchNorm2d;

class DataParallel {
 public:
  // comm: several ranks. sync_batch_norm: batch-norm layers use the whole global batch's
  // statistics during training (see FitOptions::sync_batch_norm).
  DataParallel(Communicator& comm, bool sync_batch_norm);

  int rank() const { return comm_.rank(); }
  int ranks() const { return comm_.size(); }
  bool sync_batch_norm() const { return sync_batch_norm_; }
  Communicator& communicator() { return comm_; }

  // Before training: every rank must hold the same model structure, the same `settings`
  // (a hash of the data and the settings that decide the batches) and start after the same
  // epoch; then rank 0's parameters and buffers are copied to every rank. A mismatch ends
  // every rank with a message naming what differs.
  void start(Module& model, uint64_t settings, int64_t first_epoch);

  // This rank's rows [first, last) of a global batch of `rows` rows.
  struct Shard {
    int64_t first, last;
    int64_t size() const { return last - first; }
  };
  Shard shard(int64_t rows) const;

  // The factor this rank's shard loss is multiplied by before backward (n/B with synchronised
  // batch norm, whose shared statistics make every rank's rows part of every rank's loss;
  // else 1), and the weight its finished gradients get in the sum over the ranks (1, or n/B).
  float loss_weight(int64_t shard_rows, int64_t batch_rows) const;
  float gradient_weight(int64_t shard_rows, int64_t batch_rows) const;

  // After backward: the gradients of the whole global batch on every rank, and `figures`
  // (n values) summed over the ranks.
  void reduce(Optimizer& optimizer, int64_t shard_rows, int64_t batch_rows, double* figures, int64_t n);

  // While the returned object lives, the model's batch-norm layers synchronise their batch
  // statistics over the ranks (a no-op object without sync_batch_norm). Validation on rank 0
  // alone must run outside it.
  class BatchNormScope {
   public:
    BatchNormScope() = default;
    BatchNormScope(BatchNormScope&&) = default;
    BatchNormScope& operator=(BatchNormScope&&) = default;
    ~BatchNormScope();

   private:
    friend class DataParallel;
    std::vector<BatchNorm2d*> layers_;
  };
  BatchNormScope synchronise_batch_norm(Module& model);

  // Every rank's (score, label) pairs on rank 0, for an epoch's AUC.
  void gather_scores(std::vector<float>& scores, std::vector<int32_t>& labels);

  // Returns when every rank has called it.
  void barrier() { comm_.barrier(); }

 private:
  Communicator& comm_;
  bool sync_batch_norm_;
};

}  // namespace kiln
