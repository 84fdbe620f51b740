#include "data/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/runtime/random.h"

namespace kiln {
namespace {

// The 256 possible results of 2*x/255 - 1, computed once in float32 the way the lab's
// numpy/Keras code did, so every pixel maps to exactly the same float as there.
const std::array<float, 256>& pixel_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = 2.0f * static_cast<float>(v) / 255.0f - 1.0f;
    return t;
  }();
  return table;
}

Shape image_shape(const ImageSet& set, int64_t rows) { return {rows, set.h, set.w, set.c}; }

void check_pixels(const ImageSet& set, const char* op) {
  check_arg(set.n >= 0 && set.h > 0 && set.w > 0 && set.c > 0 &&
                static_cast<int64_t>(set.pixels.size()) == set.n * set.row_size(),
            op,
            "image set [" + std::to_string(set.n) + "," + std::to_string(set.h) + "," +
                std::to_string(set.w) + "," + std::to_string(set.c) + "] does not match its " +
                std::to_string(set.pixels.size()) + " pixel bytes");
}

}  // namespace

Tensor scale_pixels(const ImageSet& set) {
  check_pixels(set, "scale_pixels");
  Tensor x = Tensor::empty(image_shape(set, set.n));
  const std::array<float, 256>& table = pixel_table();
  float* out = x.data();
  const uint8_t* in = set.pixels.data();
  const size_t total = set.pixels.size();
  for (size_t i = 0; i < total; ++i) out[i] = table[in[i]];
  return x;
}

void scale_pixels(const uint8_t* in, int64_t n, float* out) {
  const std::array<float, 256>& table = pixel_table();
  for (int64_t i = 0; i < n; ++i) out[i] = table[in[i]];
}

Tensor scale_pixels(const ImageSet& set, const std::vector<int64_t>& rows) {
  check_pixels(set, "scale_pixels");
  const int64_t m = static_cast<int64_t>(rows.size());
  const int64_t row = set.row_size();
  Tensor x = Tensor::empty(image_shape(set, m));
  const std::array<float, 256>& table = pixel_table();
  float* out = x.data();
  for (int64_t i = 0; i < m; ++i) {
    check_arg(rows[i] >= 0 && rows[i] < set.n, "scale_pixels",
              "row " + std::to_string(rows[i]) + " outside the " + std::to_string(set.n) +
                  " images");
    const uint8_t* in = set.pixels.data() + rows[i] * row;
    for (int64_t j = 0; j < row; ++j) out[i * row + j] = table[in[j]];
  }
  return x;
}

Tensor one_hot(const std::vector<int32_t>& labels, int64_t num_classes) {
  check_arg(num_classes >= 1, "one_hot", "num_classes " + std::to_string(num_classes) + " < 1");
  const int64_t n = static_cast<int64_t>(labels.size());
  Tensor y = Tensor::zeros({n, num_classes});
  float* out = y.data();
  for (int64_t i = 0; i < n; ++i) {
    check_arg(labels[i] >= 0 && labels[i] < num_classes, "one_hot",
              "label " + std::to_string(labels[i]) + " at row " + std::to_string(i) +
                  " is outside 0.." + std::to_string(num_classes - 1));
    out[i * num_classes + labels[i]] = 1.0f;
  }
  return y;
}

int64_t count_classes(std::initializer_list<const std::vector<int32_t>*> label_sets) {
  int32_t max_label = -1;
  for (const std::vector<int32_t>* labels : label_sets) {
    for (int32_t v : *labels) max_label = std::max(max_label, v);
  }
  return static_cast<int64_t>(max_label) + 1;
}

Dataset make_dataset(const ImageSet& set, const std::vector<int64_t>& rows, int64_t num_classes) {
  check_arg(static_cast<int64_t>(set.labels.size()) == set.n, "make_dataset",
            "image set has " + std::to_string(set.n) + " images but " +
                std::to_string(set.labels.size()) + " labels (expected one label per image)");
  Dataset d;
  d.num_classes = num_classes > 0 ? num_classes : count_classes({&set.labels});
  d.x = scale_pixels(set, rows);
  d.labels.reserve(rows.size());
  for (int64_t r : rows) d.labels.push_back(set.labels[r]);
  d.y_onehot = one_hot(d.labels, d.num_classes);
  return d;
}

Dataset make_dataset(const ImageSet& set, int64_t num_classes) {
  check_arg(static_cast<int64_t>(set.labels.size()) == set.n, "make_dataset",
            "image set has " + std::to_string(set.n) + " images but " +
                std::to_string(set.labels.size()) + " labels (expected one label per image)");
  Dataset d;
  d.num_classes = num_classes > 0 ? num_classes : count_classes({&set.labels});
  d.x = scale_pixels(set);
  d.labels = set.labels;
  d.y_onehot = one_hot(d.labels, d.num_classes);
  return d;
}

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  Generator gen(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[gen.randint(i + 1)]);
  return order;
}

LabSplit prepare_mnist_lab(const ImageSet& train_set, const ImageSet& test_set, int64_t n_train,
                           uint64_t seed, double valid_fraction) {
  check_arg(valid_fraction >= 0.0 && valid_fraction < 1.0, "prepare_mnist_lab",
            "valid_fraction " + std::to_string(valid_fraction) + " is outside [0, 1)");
  check_arg(train_set.h == test_set.h && train_set.w == test_set.w && train_set.c == test_set.c,
            "prepare_mnist_lab",
            "train images are " + std::to_string(train_set.h) + "x" + std::to_string(train_set.w) +
                "x" + std::to_string(train_set.c) + " but test images are " +
                std::to_string(test_set.h) + "x" + std::to_string(test_set.w) + "x" +
                std::to_string(test_set.c));
  const int64_t n = train_set.n;
  // Rounded like the lab's int(0.1 * 60000): the validation part is floor(fraction * N).
  const int64_t n_valid = static_cast<int64_t>(std::floor(valid_fraction * static_cast<double>(n)));
  const int64_t n_rest = n - n_valid;
  check_arg(n_train <= n_rest, "prepare_mnist_lab",
            "n_train " + std::to_string(n_train) + " is more than the " + std::to_string(n_rest) +
                " training images left after validation");
  const int64_t n_take = n_train <= 0 ? n_rest : n_train;

  const std::vector<int64_t> order = shuffled_indices(n, seed);
  const std::vector<int64_t> train_rows(order.begin(), order.begin() + n_take);
  const std::vector<int64_t> valid_rows(order.begin() + n_rest, order.end());
  const int64_t k = count_classes({&train_set.labels, &test_set.labels});

  LabSplit split;
  split.train = make_dataset(train_set, train_rows, k);
  split.valid = make_dataset(train_set, valid_rows, k);
  split.test = make_dataset(test_set, k);
  return split;
}

LabSplit prepare_pcam_lab(const ImageSet& train_set, const ImageSet& valid_set,
                          const ImageSet& test_set) {
  const int64_t k = count_classes({&train_set.labels, &valid_set.labels, &test_set.labels});
  LabSplit split;
  split.train = make_dataset(train_set, k);
  split.valid = make_dataset(valid_set, k);
  if (test_set.labels.empty()) {  // the course test split: images only
    split.test.x = scale_pixels(test_set);
    split.test.num_classes = k;
  } else {
    split.test = make_dataset(test_set, k);
  }
  return split;
}

Batcher::Batcher(const Dataset& data, int64_t batch_size, uint64_t seed, bool shuffle)
    : data_(data), batch_size_(batch_size), seed_(seed), shuffle_(shuffle) {
  check_arg(data.x.defined() && data.x.dim() >= 1, "Batcher", "dataset has no images");
  check_arg(batch_size >= 1, "Batcher", "batch_size " + std::to_string(batch_size) + " < 1");
  const int64_t n = data.x.size(0);
  const bool labelled = data.y_onehot.defined();
  check_arg(!labelled || (data.y_onehot.dim() == 2 && data.y_onehot.size(0) == n &&
                          data.size() == n),
            "Batcher",
            "x " + shape_str(data.x.shape()) + " and y_onehot " +
                (labelled ? shape_str(data.y_onehot.shape()) : std::string("(none)")) + " with " +
                std::to_string(data.size()) + " labels do not describe the same rows");
  const int64_t b = std::min(batch_size, std::max<int64_t>(n, 1));
  Shape xs = data.x.shape();
  xs[0] = b;
  x_buffer_ = Tensor::empty(xs);
  if (labelled) y_buffer_ = Tensor::empty({b, data.y_onehot.size(1)});
  start_epoch(0);
}

Shape Batcher::example_shape() const {
  const Shape& s = data_.x.shape();
  return Shape(s.begin() + 1, s.end());
}

uint64_t Batcher::fingerprint() const {
  uint64_t h = mix64(static_cast<uint64_t>(rows()));
  for (const int64_t d : data_.x.shape()) h = mix64(h ^ static_cast<uint64_t>(d));
  const int64_t n = data_.x.numel();
  for (int64_t i = 0; i < 64 && n > 0; ++i) {
    uint32_t bits;
    std::memcpy(&bits, data_.x.data() + (i * 7919 * 104729) % n, sizeof bits);
    h = mix64(h ^ bits);
  }
  for (const int32_t label : data_.labels) h = mix64(h ^ static_cast<uint64_t>(label));
  return h;
}

void Batcher::start_epoch(int64_t epoch) {
  const int64_t n = data_.x.size(0);
  if (shuffle_) {
    // A stream per (seed, epoch): epoch e's order does not depend on earlier epochs.
    order_ = shuffled_indices(n, mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch) + 1)));
  } else {
    order_.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order_[i] = i;
  }
  cursor_ = 0;
}

bool Batcher::next() {
  const int64_t n = static_cast<int64_t>(order_.size());
  if (cursor_ >= n) return false;
  const int64_t m = std::min(batch_size_, n - cursor_);
  const int64_t x_row = data_.x.numel() / std::max<int64_t>(data_.x.size(0), 1);
  const float* x_src = data_.x.data();
  float* x_dst = x_buffer_.data();
  const bool labelled = y_buffer_.defined();
  const int64_t k = labelled ? y_buffer_.size(1) : 0;
  batch_.indices.assign(order_.begin() + cursor_, order_.begin() + cursor_ + m);
  batch_.labels.clear();
  for (int64_t i = 0; i < m; ++i) {
    const int64_t r = batch_.indices[i];
    std::memcpy(x_dst + i * x_row, x_src + r * x_row, sizeof(float) * x_row);
    if (labelled) {
      std::memcpy(y_buffer_.data() + i * k, data_.y_onehot.data() + r * k, sizeof(float) * k);
      batch_.labels.push_back(data_.labels[r]);
    }
  }
  // A full batch is the buffer itself; the last, partial one a view of its first m rows.
  const bool full = m == x_buffer_.size(0);
  batch_.x = full ? x_buffer_ : x_buffer_.slice(0, m);
  batch_.y_onehot = !labelled ? Tensor() : full ? y_buffer_ : y_buffer_.slice(0, m);
  cursor_ += m;
  return true;
}

}  // namespace kiln
