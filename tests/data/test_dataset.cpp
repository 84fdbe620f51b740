// The lab's DataGenerator: pixel scaling, one-hot labels, the MNIST split (sizes,
// determinism per seed, a different subset per seed) and seeded mini-batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/formats/idx.h"

namespace kiln {
namespace {

const std::string kMnist = std::string(KILN_TEST_DATA_DIR) + "/mnist";

// n images of 1x1x1 whose pixel and label encode the row (pixel = row % 256,
// label = row % 10), so a test can tell which row ended up where.
ImageSet numbered_set(int64_t n) {
  ImageSet s;
  s.n = n;
  s.h = s.w = s.c = 1;
  for (int64_t i = 0; i < n; ++i) {
    s.pixels.push_back(static_cast<uint8_t>(i % 256));
    s.labels.push_back(static_cast<int32_t>(i % 10));
  }
  return s;
}

TEST(Dataset, ScalingEndpointsAndMidpoint) {
  ImageSet s;
  s.n = 1;
  s.h = 2;
  s.w = 2;
  s.c = 1;
  s.pixels = {0, 255, 128, 1};
  const Tensor x = scale_pixels(s);
  EXPECT_EQ(x.shape(), (Shape{1, 2, 2, 1}));
  const std::vector<float> v = x.to_vector();
  EXPECT_EQ(v[0], -1.0f);
  EXPECT_EQ(v[1], 1.0f);
  EXPECT_FLOAT_EQ(v[2], 2.0f * 128.0f / 255.0f - 1.0f);
  EXPECT_FLOAT_EQ(v[3], 2.0f / 255.0f - 1.0f);
}

TEST(Dataset, ScalingKeepsNhwcAndChannels) {
  ImageSet s;
  s.n = 2;
  s.h = 1;
  s.w = 2;
  s.c = 3;
  for (int i = 0; i < 12; ++i) s.pixels.push_back(static_cast<uint8_t>(i * 20));
  const Tensor x = scale_pixels(s, {1});
  EXPECT_EQ(x.shape(), (Shape{1, 1, 2, 3}));
  EXPECT_FLOAT_EQ(x.to_vector()[0], 2.0f * 120.0f / 255.0f - 1.0f);  // row 1 starts at byte 6
}

TEST(Dataset, OneHot) {
  const Tensor y = one_hot({2, 0, 1}, 3);
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 1, 0}));
  EXPECT_THROW(one_hot({0, 3}, 3), std::invalid_argument);
  EXPECT_THROW(one_hot({-1}, 3), std::invalid_argument);
}

TEST(Dataset, ClassesAndChannelsComeFromTheData) {
  const ImageSet s = load_mnist(kMnist, "t10k");
  const Dataset d = make_dataset(s);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_EQ(d.x.shape(), (Shape{500, 28, 28, 1}));
  EXPECT_EQ(d.y_onehot.shape(), (Shape{500, 10}));
  EXPECT_EQ(d.y_onehot.at({0, 7}), 1.0f);  // first t10k digit is a 7
  ImageSet unlabelled = s;
  unlabelled.labels.clear();
  EXPECT_THROW(make_dataset(unlabelled), std::invalid_argument);
}

TEST(Dataset, LabSplitSizesOnTheFullSize) {
  // 60,000 -> 54,000 train + 6,000 validation, as in the lab; cheap with 1x1 images.
  const ImageSet train = numbered_set(60000), test = numbered_set(100);
  const LabSplit all = prepare_mnist_lab(train, test, -1, 7);
  EXPECT_EQ(all.train.size(), 54000);
  EXPECT_EQ(all.valid.size(), 6000);
  EXPECT_EQ(all.test.size(), 100);
  EXPECT_EQ(prepare_mnist_lab(train, test, 0, 7).train.size(), 54000);
  EXPECT_EQ(prepare_mnist_lab(train, test, 128, 7).train.size(), 128);
  EXPECT_THROW(prepare_mnist_lab(train, test, 54001, 7), std::invalid_argument);
}

TEST(Dataset, LabSplitOnTheSlice) {
  const ImageSet train = load_mnist(kMnist, "train"), test = load_mnist(kMnist, "t10k");
  const LabSplit s = prepare_mnist_lab(train, test, -1, 1);
  EXPECT_EQ(s.train.size(), 1800);
  EXPECT_EQ(s.valid.size(), 200);
  EXPECT_EQ(s.test.size(), 500);
  EXPECT_EQ(s.train.x.shape(), (Shape{1800, 28, 28, 1}));
  EXPECT_EQ(s.train.num_classes, 10);
  // The split is exactly "shuffle with the seed, last 10 % validation, first N of the rest".
  const std::vector<int64_t> order = shuffled_indices(2000, 1);
  const Tensor want_valid = scale_pixels(train, std::vector<int64_t>(order.begin() + 1800, order.end()));
  EXPECT_EQ(s.valid.x.to_vector(), want_valid.to_vector());
  const LabSplit small = prepare_mnist_lab(train, test, 128, 1);
  const Tensor want_train = scale_pixels(train, std::vector<int64_t>(order.begin(), order.begin() + 128));
  EXPECT_EQ(small.train.x.to_vector(), want_train.to_vector());
  // K stays 10 even if the 128 happened to miss a class: it comes from the whole sets.
  EXPECT_EQ(small.train.y_onehot.shape(), (Shape{128, 10}));
}

TEST(Dataset, SameSeedSameSplitOtherSeedOtherSubset) {
  const ImageSet train = numbered_set(2000), test = numbered_set(10);
  const LabSplit a = prepare_mnist_lab(train, test, 128, 42);
  const LabSplit b = prepare_mnist_lab(train, test, 128, 42);
  const LabSplit c = prepare_mnist_lab(train, test, 128, 43);
  EXPECT_EQ(a.train.x.to_vector(), b.train.x.to_vector());
  EXPECT_EQ(a.train.labels, b.train.labels);
  EXPECT_EQ(a.valid.x.to_vector(), b.valid.x.to_vector());
  EXPECT_NE(a.train.x.to_vector(), c.train.x.to_vector());
  // And the subset is a random draw, not the first rows of the file.
  EXPECT_NE(shuffled_indices(2000, 42), shuffled_indices(2000, 43));
  const std::vector<int64_t> order = shuffled_indices(2000, 42);
  EXPECT_NE(std::vector<int64_t>(order.begin(), order.begin() + 5), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(Dataset, ShuffledIndicesIsAPermutation) {
  std::vector<int64_t> p = shuffled_indices(1000, 5);
  std::sort(p.begin(), p.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(p[i], i);
  EXPECT_TRUE(shuffled_indices(0, 5).empty());
}

TEST(Dataset, PcamLabKeepsAnUnlabelledTestSet) {
  ImageSet train = numbered_set(10), valid = numbered_set(4), test = numbered_set(3);
  for (auto* s : {&train, &valid}) {
    for (int32_t& l : s->labels) l %= 2;
  }
  test.labels.clear();
  const LabSplit s = prepare_pcam_lab(train, valid, test);
  EXPECT_EQ(s.train.num_classes, 2);
  EXPECT_EQ(s.test.x.shape(), (Shape{3, 1, 1, 1}));
  EXPECT_FALSE(s.test.y_onehot.defined());
}

// ---------------------------------------------------------------- batching

// Which dataset row a batch row came from, read back from the pixel (numbered_set).
int64_t row_of(float pixel) { return static_cast<int64_t>(std::lround((pixel + 1.0f) * 255.0f / 2.0f)); }

TEST(Batcher, EveryIndexOncePerEpochWithAPartialLastBatch) {
  const Dataset d = make_dataset(numbered_set(103));
  Batcher b(d, 16, 9);
  EXPECT_EQ(b.batches_per_epoch(), 7);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    b.start_epoch(epoch);
    std::vector<int64_t> seen, sizes;
    while (b.next()) {
      const Batch& batch = b.batch();
      sizes.push_back(batch.size());
      EXPECT_EQ(batch.x.size(0), batch.size());
      EXPECT_EQ(batch.y_onehot.shape(), (Shape{batch.size(), 10}));
      const std::vector<float> px = batch.x.to_vector();
      for (int64_t i = 0; i < batch.size(); ++i) {
        const int64_t r = batch.indices[i];
        EXPECT_EQ(row_of(px[i]), r);  // the gathered image is that row's
        EXPECT_EQ(batch.labels[i], r % 10);
        EXPECT_EQ(batch.y_onehot.at({i, r % 10}), 1.0f);
        seen.push_back(r);
      }
    }
    EXPECT_EQ(sizes, (std::vector<int64_t>{16, 16, 16, 16, 16, 16, 7}));
    std::sort(seen.begin(), seen.end());
    for (int64_t i = 0; i < 103; ++i) ASSERT_EQ(seen[i], i);
  }
}

std::vector<int64_t> epoch_order(Batcher& b, int64_t epoch) {
  std::vector<int64_t> order;
  b.start_epoch(epoch);
  while (b.next()) order.insert(order.end(), b.batch().indices.begin(), b.batch().indices.end());
  return order;
}

TEST(Batcher, OrderIsSeededPerEpoch) {
  const Dataset d = make_dataset(numbered_set(50));
  Batcher a(d, 8, 1), a2(d, 8, 1), other(d, 8, 2);
  const std::vector<int64_t> e0 = epoch_order(a, 0), e1 = epoch_order(a, 1);
  EXPECT_NE(e0, e1);                      // a new order each epoch
  EXPECT_EQ(epoch_order(a2, 1), e1);      // epoch 1 does not depend on running epoch 0 first
  EXPECT_EQ(epoch_order(a, 0), e0);       // and is reproducible
  EXPECT_NE(epoch_order(other, 0), e0);   // another seed, another order
  Batcher plain(d, 8, 1, /*shuffle=*/false);
  const std::vector<int64_t> in_order = epoch_order(plain, 3);
  for (int64_t i = 0; i < 50; ++i) ASSERT_EQ(in_order[i], i);
}

TEST(Batcher, ReusesOneBuffer) {
  const Dataset d = make_dataset(numbered_set(40));
  Batcher b(d, 16, 3);
  std::set<const float*> buffers;
  while (b.next()) buffers.insert(b.batch().x.data());
  EXPECT_EQ(buffers.size(), 1u);  // full and partial batches all live in the same storage
}

TEST(Batcher, BatchLargerThanDatasetAndBadArguments) {
  const Dataset d = make_dataset(numbered_set(5));
  Batcher b(d, 64, 0);
  EXPECT_EQ(b.batches_per_epoch(), 1);
  ASSERT_TRUE(b.next());
  EXPECT_EQ(b.batch().size(), 5);
  EXPECT_FALSE(b.next());
  EXPECT_THROW(Batcher(d, 0, 0), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
