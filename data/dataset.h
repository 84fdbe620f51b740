// The lab's DataGenerator: raw uint8 images -> float tensors in [-1, 1] and one-hot labels,
// the MNIST train/validation/subset split, and seeded mini-batches.
//
// Layout is NHWC throughout (x: [N,H,W,C]), as stored by IDX and PCam and as the lab's Keras
// models took it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "core/tensor.h"
#include "core/io/file_error.h"  // FileError
#include "data/batch_source.h"
#include "data/image_set.h"

namespace kiln {

struct Dataset {
  Tensor x;                     // [N,H,W,C] float32, 2*pixel/255 - 1
  Tensor y_onehot;              // [N,K] float32
  std::vector<int32_t> labels;  // [N], 0..K-1
  int64_t num_classes = 0;      // K

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// pixels uint8 [N,H,W,C] (set) -> float32 [N,H,W,C] with x = 2*x/255 - 1 (0 -> -1, 255 -> 1).
Tensor scale_pixels(const ImageSet& set);
// Rows `rows` of set, in that order -> float32 [rows.size(),H,W,C], scaled as above.
Tensor scale_pixels(const ImageSet& set, const std::vector<int64_t>& rows);
// The same scaling for n raw bytes: out[i] = 2*in[i]/255 - 1.
void scale_pixels(const uint8_t* in, int64_t n, float* out);

// labels [N] in 0..K-1 -> [N,K] float32 one-hot. Throws std::invalid_argument naming the row
// when a label is outside 0..K-1.
Tensor one_hot(const std::vector<int32_t>& labels, int64_t num_classes);

// K = max label + 1 over the given label sets (so a small subset still gets every class its
// source set has).
int64_t count_classes(std::initializer_list<const std::vector<int32_t>*> label_sets);

// set (with labels) -> Dataset of all rows, or of `rows` in that order. num_classes <= 0
// means K = max label + 1. Throws std::invalid_argument when the set has no labels.
Dataset make_dataset(const ImageSet& set, int64_t num_classes = 0);
Dataset make_dataset(const ImageSet& set, const std::vector<int64_t>& rows, int64_t num_classes);

// 0..n-1 in an order that depends only on seed (Fisher-Yates on kiln::Generator).
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed);

struct LabSplit {
  Dataset train;  // the first n_train of the shuffled non-validation rows
  Dataset valid;  // the last valid_fraction of the shuffled train set
  Dataset test;   // the whole test set, in file order
};

// The lab's MNIST preparation: shuffle train_set's rows with seed, the last valid_fraction
// (10 %: 6,000 of 60,000) become validation, and train takes the first n_train of the rest
// (n_train <= 0: all of them). K comes from both sets' labels. Same seed -> same split; each
// seed draws a different random (non-stratified) subset.
// train_set, test_set: [N,H,W,C] uint8 with labels.
LabSplit prepare_mnist_lab(const ImageSet& train_set, const ImageSet& test_set, int64_t n_train,
                           uint64_t seed, double valid_fraction = 0.1);

// The lab's PCam preparation: the course files are already split, so each set is only scaled
// and one-hot encoded, with K from train and valid. test_set may be unlabelled (the course
// test_x.h5): then test.labels and test.y_onehot stay empty/undefined.
LabSplit prepare_pcam_lab(const ImageSet& train_set, const ImageSet& valid_set,
                          const ImageSet& test_set);

// Shuffled mini-batches over a Dataset, one pass per epoch. Each epoch's order is drawn from
// (seed, epoch), so epoch e is the same whatever happened before it. Every row appears exactly
// once per epoch; the last batch holds the remainder (N mod batch_size) when there is one.
// Rows are gathered into one batch buffer allocated once, so an epoch never copies the whole
// dataset.
class Batcher : public BatchSource {
 public:
  // data: x [N,...], y_onehot [N,K]; batch_size >= 1. shuffle=false keeps file order
  // (evaluation).
  Batcher(const Dataset& data, int64_t batch_size, uint64_t seed, bool shuffle = true);

  int64_t rows() const override { return data_.x.size(0); }
  int64_t batch_size() const override { return batch_size_; }
  Shape example_shape() const override;
  int64_t num_classes() const override { return y_buffer_.defined() ? y_buffer_.size(1) : 0; }
  // Starts epoch `epoch` (any number, in any order): draws its permutation.
  void start_epoch(int64_t epoch) override;
  // Gathers the next batch of the epoch; false when the epoch is done.
  bool next() override;
  const Batch& batch() const override { return batch_; }
  // Size, shape, labels and a sample of the pixels.
  uint64_t fingerprint() const override;

 private:
  Dataset data_;  // handles: shares the tensors, copies only the label vector
  int64_t batch_size_;
  uint64_t seed_;
  bool shuffle_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
  Tensor x_buffer_;  // [batch_size, H,W,C]
  Tensor y_buffer_;  // [batch_size, K]
  Batch batch_;
};

}  // namespace kiln
