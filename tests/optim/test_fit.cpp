// The training loop on real MNIST slices: learning, overfitting, determinism, evaluate/predict.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/zoo/lab_models.h"
#include "optim/adam.h"
#include "optim/train/fit.h"
#include "optim/train/metrics.h"

namespace kiln {
namespace {

const std::string kMnist = std::string(KILN_TEST_DATA_DIR) + "/mnist";

Dataset first_rows(const ImageSet& set, int64_t n) {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  return make_dataset(set, rows, 10);
}

TEST(Fit, Task1OneEpochOn2000ImagesBeatsChanceClearly) {
  const ImageSet train_raw = load_mnist(kMnist, "train");
  const ImageSet test_raw = load_mnist(kMnist, "t10k");
  ASSERT_EQ(train_raw.n, 2000);
  const Dataset train = make_dataset(train_raw, 10);
  const Dataset test = make_dataset(test_raw, 10);
  manual_seed(1);
  auto model = task1_model();
  Adam adam(model->named_parameters(), {.learning_rate = 3e-3f});
  const History h = fit(*model, adam, train, {.epochs = 1, .batch_size = 16, .seed = 1, .quiet = true});
  ASSERT_EQ(h.epochs.size(), 1u);
  const Evaluation e = evaluate(*model, test);
  EXPECT_EQ(e.n, test_raw.n);
  // Chance is 10 %; one short epoch of this tiny CNN gets far beyond it.
  EXPECT_GT(e.accuracy, 0.6) << "test loss " << e.loss;
  EXPECT_LT(e.loss, std::log(10.0));
}

TEST(Fit, Task2ModelOverfits32ImagesWithBatchNormAndDropout) {
  const Dataset train = first_rows(load_mnist(kMnist, "train"), 32);
  manual_seed(2);
  auto model = task2_model();
  Adam adam(model->named_parameters(), {});
  const History h = fit(*model, adam, train, {.epochs = 25, .batch_size = 8, .seed = 2, .quiet = true});
  // Keras' train accuracy: the running figure of the last epoch, dropout and batch norm active.
  EXPECT_EQ(h.epochs.back().accuracy, 1.0) << "loss " << h.epochs.back().loss;
  EXPECT_LT(h.epochs.back().loss, h.epochs.front().loss);
}

TEST(Fit, SameSeedGivesBitIdenticalHistory) {
  const Dataset train = first_rows(load_mnist(kMnist, "train"), 256);
  auto run = [&] {
    manual_seed(5);
    auto model = task2_model();
    Adam adam(model->named_parameters(), {});
    return fit(*model, adam, train, {.epochs = 2, .batch_size = 32, .validation = &train,
                                     .seed = 5, .quiet = true});
  };
  const History a = run(), b = run();
  ASSERT_EQ(a.epochs.size(), b.epochs.size());
  for (size_t i = 0; i < a.epochs.size(); ++i) {
    EXPECT_EQ(a.epochs[i].loss, b.epochs[i].loss);
    EXPECT_EQ(a.epochs[i].accuracy, b.epochs[i].accuracy);
    EXPECT_EQ(a.epochs[i].val_loss, b.epochs[i].val_loss);
  }
}

TEST(Fit, ValidationOnlyAtItsFrequencyAndCsv) {
  const Dataset train = first_rows(load_mnist(kMnist, "train"), 64);
  manual_seed(3);
  auto model = task1_model();
  Adam adam(model->named_parameters(), {});
  const History h = fit(*model, adam, train, {.epochs = 4, .batch_size = 16, .validation = &train,
                                              .validation_freq = 2, .seed = 3, .quiet = true});
  ASSERT_EQ(h.epochs.size(), 4u);
  EXPECT_FALSE(h.epochs[0].validated);
  EXPECT_TRUE(h.epochs[1].validated);
  EXPECT_FALSE(h.epochs[2].validated);
  EXPECT_TRUE(h.epochs[3].validated);
  const auto path = std::filesystem::temp_directory_path() / "kiln_test_history.csv";
  h.write_csv(path.string());
  std::ifstream f(path);
  std::string header, first, second;
  std::getline(f, header);
  std::getline(f, first);
  std::getline(f, second);
  EXPECT_EQ(header, "epoch,loss,accuracy,val_loss,val_accuracy,seconds");
  EXPECT_EQ(first.rfind("1,", 0), 0u);
  EXPECT_NE(first.find(",,,"), std::string::npos);  // no validation in epoch 1
  EXPECT_EQ(second.find(",,,"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(Fit, EvaluateAgreesWithPredict) {
  const Dataset data = first_rows(load_mnist(kMnist, "t10k"), 300);
  manual_seed(4);
  auto model = task1_model();
  const Tensor probs = predict(*model, data.x, 64);
  ASSERT_EQ(probs.shape(), (Shape{300, 10}));
  for (int64_t i = 0; i < 300; ++i) {
    double s = 0;
    for (int64_t k = 0; k < 10; ++k) s += probs.at({i, k});
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
  const Evaluation e = evaluate(*model, data, 128);
  EXPECT_DOUBLE_EQ(e.accuracy, accuracy(probs, data.labels));
  EXPECT_NEAR(e.loss, categorical_cross_entropy(probs, data.y_onehot), 1e-6);
}

TEST(Fit, RejectsBadSettings) {
  const Dataset data = first_rows(load_mnist(kMnist, "t10k"), 10);
  auto model = task1_model();
  Adam adam(model->named_parameters(), {});
  EXPECT_THROW(fit(*model, adam, data, {.epochs = 1, .batch_size = 0}), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
