// A dataset that stays in its HDF5 file: StreamingDataset reads uint8 images in blocks of
// whole HDF5 chunks while the model trains, and hands out float32 batches scaled to [-1, 1]
// like make_dataset (dataset.h), so the original 96x96 PatchCamelyon (7.2 GB of uint8 in
// its training split, 29 GB as float32) trains in a bounded amount of memory.
//
// How an epoch is ordered (shuffle on): the file's rows are cut into blocks of whole HDF5
// chunks; the blocks are put in a random order, read a window of blocks at a time, and the
// rows inside each window are shuffled. Each read is contiguous (every chunk is decompressed
// once per epoch), yet every epoch visits the rows in another order. The order depends only
// on (seed, epoch), like Batcher's, but it is not Batcher's order.
//
// Memory: the window of uint8 rows plus `prefetch` float batches, together at most
// StreamOptions::memory_bytes, whatever the size of the file; labels (4 bytes a row) are
// held for all rows.
//
// A background thread reads the next window and converts the next batches while the caller
// trains on the current one. The thread is only active inside an epoch (start_epoch starts it,
// the epoch's last batch or the destructor ends it); an error it meets (a damaged file) is
// rethrown by next(). Augmentation stays with the caller (fit), which runs it on all cores.
// The constructor starts epoch 0, so its first window is read while the model is built;
// starting epoch 0 again before taking a batch of it (fit and evaluate do) keeps that work.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/batch_source.h"
#include "data/formats/pcam.h"

namespace kiln {

struct StreamOptions {
  int64_t batch_size = 32;
  uint64_t seed = 0;
  bool shuffle = true;                    // false: file order (evaluation, prediction)
  int64_t memory_bytes = int64_t{256} << 20;  // bound on the window and the prefetched batches
  int64_t num_classes = 0;                // K of y_onehot; 0: the largest label + 1 (unlabelled: 0)
  int64_t prefetch = 3;                   // float batches converted ahead (>= 2)
  int64_t max_rows = 0;                   // > 0: only the file's first max_rows rows
};

class StreamingDataset : public BatchSource {
 public:
  // Streams the rows `reader` sees (its crop applied). Labels are optional: an unlabelled split
  // gives batches without y_onehot and labels (prediction only). Throws std::invalid_argument
  // when memory_bytes cannot hold one block of rows and the prefetched batches, saying how
  // much it needs.
  StreamingDataset(PcamReader reader, const StreamOptions& options);
  // dir, split ("train" | "valid" | "test"), crop (0: stored size) as for PcamReader.
  StreamingDataset(const std::string& dir, const std::string& split, int64_t crop,
                   const StreamOptions& options);
  ~StreamingDataset() override;
  StreamingDataset(const StreamingDataset&) = delete;
  StreamingDataset& operator=(const StreamingDataset&) = delete;

  int64_t rows() const override;
  int64_t batch_size() const override;
  Shape example_shape() const override;
  int64_t num_classes() const override;
  void start_epoch(int64_t epoch) override;
  bool next() override;
  const Batch& batch() const override;
  uint64_t fingerprint() const override;

  const std::string& path() const;     // the file holding x
  int64_t window_rows() const;         // rows read per window
  int64_t block_rows() const;          // rows per contiguous read (whole HDF5 chunks)
  int64_t windows_read() const;        // windows read from the file so far, over all epochs
  int64_t buffer_bytes() const;        // what the window and batch buffers take
  const std::vector<int32_t>& labels() const;  // every row's label (empty when unlabelled)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
