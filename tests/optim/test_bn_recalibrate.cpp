// recalibrate_batch_norm: the moving statistics it leaves must be the exact mean and (biased)
// variance of each batch-norm layer's input over the images it ran, whatever the momentum, with
// dropout off and the model's training flag restored.
#include "optim/train/bn_recalibrate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/ops.h"
#include "data/formats/pcam.h"
#include "data/stream/streaming_dataset.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/sequential.h"

namespace kiln {
namespace {

Dataset random_images(int64_t n, uint64_t seed) {
  Dataset d;
  d.x = Tensor::normal({n, 6, 6, 1}, 0.3f, 1.5f, seed);
  d.num_classes = 2;
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % 2));
  d.y_onehot = one_hot(d.labels, 2);
  return d;
}

struct Net {
  std::shared_ptr<Sequential> model = std::make_shared<Sequential>();
  std::shared_ptr<Conv2D> conv;
  std::shared_ptr<BatchNorm2d> bn;
};

// conv -> dropout -> batch norm -> flatten: the dropout in front of the batch norm would change
// its input statistics if recalibration left it active.
Net make_net(float momentum) {
  Net n;
  n.conv = std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 3, .seed = 5});
  {
    NoGradGuard no_grad;
    n.conv->bias().copy_(Tensor::from_vector({3}, {0.5f, -1.0f, 2.0f}));
  }
  n.bn = std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 3, .momentum = momentum});
  n.model->add(n.conv).add(std::make_shared<Dropout>(0.5f, 9)).add(n.bn).add(std::make_shared<Flatten>());
  return n;
}

// Mean and biased variance per channel of the conv output over rows [0, n) of data.
void expected_statistics(Conv2D& conv, const Dataset& data, int64_t n, std::vector<double>& mean,
                         std::vector<double>& var) {
  NoGradGuard no_grad;
  const Tensor y = conv.forward(data.x.slice(0, n));
  const int64_t c = y.size(-1), m = y.numel() / c;
  mean.assign(static_cast<size_t>(c), 0.0);
  var.assign(static_cast<size_t>(c), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < c; ++k) mean[k] += y.data()[i * c + k];
  for (double& v : mean) v /= static_cast<double>(m);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < c; ++k) var[k] += std::pow(y.data()[i * c + k] - mean[k], 2);
  for (double& v : var) v /= static_cast<double>(m);
}

TEST(RecalibrateBatchNorm, LeavesTheExactStatisticsOfTheImagesSeen) {
  const Dataset data = random_images(40, 1);
  for (float momentum : {0.99f, 0.9f, 0.5f}) {
    Net net = make_net(momentum);
    net.model->train(true);
    // 5 batches of 8 cover the 40 images (in a shuffled order, which the pooled figures ignore).
    const BatchNormRecalibration rc = recalibrate_batch_norm(*net.model, data, 100, 8, 3);
    EXPECT_EQ(rc.layers, 1);
    EXPECT_EQ(rc.batches, 5);
    EXPECT_EQ(rc.images, 40);
    EXPECT_TRUE(net.model->is_training());
    EXPECT_TRUE(net.bn->is_training());
    std::vector<double> mean, var;
    expected_statistics(*net.conv, data, 40, mean, var);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(net.bn->moving_mean().data()[k], mean[k], 1e-4 * (1 + std::abs(mean[k])))
          << "momentum " << momentum << " channel " << k;
      EXPECT_NEAR(net.bn->moving_variance().data()[k], var[k], 1e-4 * var[k])
          << "momentum " << momentum << " channel " << k;
    }
  }
}

TEST(RecalibrateBatchNorm, UsesOnlyTheBatchesAskedForAndRestoresEvalMode) {
  const Dataset data = random_images(40, 2);
  Net net = make_net(0.99f);
  net.model->eval();
  const BatchNormRecalibration rc = recalibrate_batch_norm(*net.model, data, 2, 10);
  EXPECT_EQ(rc.batches, 2);
  EXPECT_EQ(rc.images, 20);
  EXPECT_FALSE(net.model->is_training());
  EXPECT_FALSE(net.bn->is_training());
  // With batch order fixed by the seed, the same call gives the same statistics.
  const std::vector<float> first = net.bn->moving_mean().to_vector();
  recalibrate_batch_norm(*net.model, data, 2, 10);
  EXPECT_EQ(net.bn->moving_mean().to_vector(), first);
}

TEST(RecalibrateBatchNorm, AnyBatchSourceServesAndTheEpochPicksTheBatches) {
  const Dataset data = random_images(40, 5);
  Net a = make_net(0.99f), b = make_net(0.99f);
  // The Dataset form is the source form over Batcher(data, batch_size, seed) at epoch 0.
  recalibrate_batch_norm(*a.model, data, 2, 10, 7);
  Batcher batcher(data, 10, 7);
  const BatchNormRecalibration rc = recalibrate_batch_norm(*b.model, batcher, 2);
  EXPECT_EQ(rc.batches, 2);
  EXPECT_EQ(rc.images, 20);
  EXPECT_EQ(b.bn->moving_mean().to_vector(), a.bn->moving_mean().to_vector());
  EXPECT_EQ(b.bn->moving_variance().to_vector(), a.bn->moving_variance().to_vector());
  // Another epoch of the source draws other images.
  recalibrate_batch_norm(*b.model, batcher, 2, 1);
  EXPECT_NE(b.bn->moving_mean().to_vector(), a.bn->moving_mean().to_vector());
}

// A streamed training split (task3 --stream-memory --bn-recalibrate): batches covering the
// whole file give the statistics of every row, as the in-memory form does over the same rows.
TEST(RecalibrateBatchNorm, StreamedSplitGivesTheStatisticsOfTheRowsItRead) {
  const std::string slice = std::string(KILN_TEST_DATA_DIR) + "/pcam";  // train.h5: 1,000 rows
  const Dataset data = make_dataset(load_pcam(slice, "train", 0));
  StreamingDataset stream(slice, "train", 0, {.batch_size = 100, .seed = 4, .memory_bytes = int64_t{8} << 20});
  Sequential a, b;
  for (Sequential* m : {&a, &b}) {
    m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 3, .filters = 4, .seed = 2}))
        .add(std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 4}));
  }
  const BatchNormRecalibration in_memory = recalibrate_batch_norm(a, data, 100, 100, 4);
  const BatchNormRecalibration streamed = recalibrate_batch_norm(b, stream, 100);
  EXPECT_EQ(in_memory.images, 1000);
  EXPECT_EQ(streamed.images, 1000);
  EXPECT_EQ(streamed.batches, 10);
  auto* bn_a = dynamic_cast<BatchNorm2d*>(a.named_children()[1].second);
  auto* bn_b = dynamic_cast<BatchNorm2d*>(b.named_children()[1].second);
  ASSERT_TRUE(bn_a && bn_b);
  for (int k = 0; k < 4; ++k) {
    const float ma = bn_a->moving_mean().data()[k], va = bn_a->moving_variance().data()[k];
    EXPECT_NEAR(bn_b->moving_mean().data()[k], ma, 1e-5 * (1 + std::abs(ma))) << "channel " << k;
    EXPECT_NEAR(bn_b->moving_variance().data()[k], va, 1e-5 * va) << "channel " << k;
  }
}

TEST(RecalibrateBatchNorm, ModelWithoutBatchNormIsLeftAlone) {
  Sequential model;
  model.add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 2})).add(std::make_shared<Flatten>());
  const BatchNormRecalibration rc = recalibrate_batch_norm(model, random_images(8, 3), 4, 4);
  EXPECT_EQ(rc.layers, 0);
  EXPECT_EQ(rc.batches, 0);
}

TEST(RecalibrateBatchNorm, RejectsBadArguments) {
  Net net = make_net(0.99f);
  const Dataset data = random_images(8, 4);
  EXPECT_THROW(recalibrate_batch_norm(*net.model, data, 0, 4), std::invalid_argument);
  EXPECT_THROW(recalibrate_batch_norm(*net.model, data, 4, 0), std::invalid_argument);
  EXPECT_THROW(recalibrate_batch_norm(*net.model, Dataset{}, 4, 4), std::invalid_argument);
  Net frozen = make_net(1.0f);
  EXPECT_THROW(recalibrate_batch_norm(*frozen.model, data, 4, 4), std::invalid_argument);
  EXPECT_TRUE(frozen.model->is_training());
}

}  // namespace
}  // namespace kiln
