// Where training and evaluation get their mini-batches: anything that can hand out an epoch's
// batches one after the other. Batcher (dataset.h) serves them from a Dataset held in memory;
// StreamingDataset (stream/streaming_dataset.h) reads them from an HDF5 file while the model
// trains. fit(), evaluate() and predict() (optim/train/fit.h) take either.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace kiln {

// One mini-batch. x and y_onehot are views of the source's reusable buffers: valid until the
// next call to next() or start_epoch().
struct Batch {
  Tensor x;                      // [B,H,W,C]
  Tensor y_onehot;               // [B,K] (undefined for unlabelled data)
  std::vector<int32_t> labels;   // [B] (empty for unlabelled data)
  std::vector<int64_t> indices;  // [B] rows of the data they came from
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;

  virtual int64_t rows() const = 0;                // rows in one epoch
  virtual int64_t batch_size() const = 0;
  virtual Shape example_shape() const = 0;         // one row of x: [H,W,C]
  virtual int64_t num_classes() const = 0;         // K of y_onehot (0 when unlabelled)
  int64_t batches_per_epoch() const { return (rows() + batch_size() - 1) / batch_size(); }

  // Starts epoch `epoch` (any number, in any order): its order depends only on the source's
  // seed and `epoch`.
  virtual void start_epoch(int64_t epoch) = 0;
  // Makes the epoch's next batch current; false when the epoch is done. Every row comes once
  // per epoch; the last batch holds the remainder when rows() is not a multiple of batch_size().
  virtual bool next() = 0;
  virtual const Batch& batch() const = 0;

  // A value that differs, with high probability, between sources over different data
  // (data-parallel ranks compare it before training).
  virtual uint64_t fingerprint() const = 0;
};

}  // namespace kiln
