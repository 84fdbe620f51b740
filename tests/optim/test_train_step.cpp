// A model of the user's own (a residual CNN written as a Module subclass, ending in logits)
// trained through fit() and through a hand-written loop over train_step(): the two agree bit
// for bit, a run stopped after an epoch and resumed from its checkpoint equals one that never
// stopped, the callbacks and a custom loss are called as documented, and summary() shows the
// module's layers. On real MNIST slices.
#include "optim/train/train_step.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/ops/ops.h"
#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/io/model_file.h"
#include "layers/layer_registry.h"
#include "layers/max_pool2d.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/train/fit.h"
#include "tests/optim/residual_net.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing_models::ResidualNet;
using testing_models::expect_same_state;
using testing_models::train_rows;

std::unique_ptr<ResidualNet> fresh_model(uint64_t seed) {
  manual_seed(seed);
  return std::make_unique<ResidualNet>();
}

constexpr int64_t kEpochs = 3, kBatch = 32;
constexpr uint64_t kSeed = 7;

TEST(TrainStep, AHandWrittenLoopEqualsFit) {
  auto by_fit = fresh_model(kSeed);
  Adam adam_fit(by_fit->named_parameters(), {});
  const History h = fit(*by_fit, adam_fit, train_rows(), {.epochs = kEpochs, .batch_size = kBatch, .seed = kSeed, .quiet = true});

  auto by_hand = fresh_model(kSeed);
  Adam adam_hand(by_hand->named_parameters(), {});
  Batcher batcher(train_rows(), kBatch, kSeed);
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    by_hand->train();
    batcher.start_epoch(epoch);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    while (batcher.next()) {
      const StepResult r = train_step(*by_hand, adam_hand, batcher.batch());
      loss_sum += r.loss_sum;
      correct += r.correct;
      seen += r.rows;
    }
    EXPECT_EQ(seen, train_rows().size());
    EXPECT_EQ(loss_sum / seen, h.epochs[static_cast<size_t>(epoch)].loss) << "epoch " << epoch + 1;
    EXPECT_EQ(static_cast<double>(correct) / seen, h.epochs[static_cast<size_t>(epoch)].accuracy);
  }
  expect_same_state(*by_fit, *by_hand);
  // It learned: the model outputs logits, and the default loss is softmax cross-entropy on them.
  EXPECT_LT(h.epochs.back().loss, h.epochs.front().loss);
  EXPECT_GT(evaluate(*by_fit, train_rows()).accuracy, 0.5);
}

TEST(TrainStep, AStoppedRunResumedFromItsCheckpointEqualsOneThatNeverStopped) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_train_step_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string checkpoint = (dir / "ck.h5").string();

  auto straight = fresh_model(kSeed);
  Adam adam_straight(straight->named_parameters(), {});
  const History whole = fit(*straight, adam_straight, train_rows(),
                            {.epochs = kEpochs, .batch_size = kBatch, .validation = &train_rows(), .seed = kSeed, .quiet = true});

  // Stopped after epoch 1 (its checkpoint written), as a killed process would be.
  FitOptions o{.epochs = kEpochs, .batch_size = kBatch, .validation = &train_rows(), .seed = kSeed, .quiet = true};
  o.checkpoint_path = checkpoint;
  o.checkpoint_every = 1;
  {
    auto first = fresh_model(kSeed);
    Adam adam_first(first->named_parameters(), {});
    FitOptions stopping = o;
    int64_t batches_seen = 0;
    stopping.on_batch_end = [&](int64_t epoch, int64_t, const StepResult&) {
      ++batches_seen;
      if (epoch == 1) throw std::runtime_error("stopped");
    };
    EXPECT_THROW(fit(*first, adam_first, train_rows(), stopping), std::runtime_error);
    EXPECT_EQ(batches_seen, train_rows().size() / kBatch + 1);  // epoch 1's steps and the first of epoch 2
  }
  // Resumed in a new model built from another seed: everything comes from the checkpoint.
  auto resumed = fresh_model(kSeed + 100);
  Adam adam_resumed(resumed->named_parameters(), {});
  o.resume = true;
  std::vector<int64_t> epochs_ended;
  o.on_epoch_end = [&](const EpochLog& log) { epochs_ended.push_back(log.epoch); };
  const History h = fit(*resumed, adam_resumed, train_rows(), o);
  EXPECT_EQ(epochs_ended, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(h.epochs.size(), whole.epochs.size());
  for (size_t i = 0; i < h.epochs.size(); ++i) {
    EXPECT_EQ(h.epochs[i].loss, whole.epochs[i].loss);
    EXPECT_EQ(h.epochs[i].val_loss, whole.epochs[i].val_loss);
  }
  expect_same_state(*straight, *resumed);
  fs::remove_all(dir);
}

TEST(TrainStep, ACustomLossIsUsedOnTheModelsOutput) {
  // The default loss written out by hand: the same steps, bit for bit, and it is called once
  // per step.
  auto with_default = fresh_model(kSeed);
  Adam adam_default(with_default->named_parameters(), {});
  auto with_custom = fresh_model(kSeed);
  Adam adam_custom(with_custom->named_parameters(), {});
  int calls = 0;
  const TrainStepOptions custom{.loss = [&](const Tensor& output, const Batch& b) {
    ++calls;
    EXPECT_EQ(output.size(0), b.size());
    return softmax_cross_entropy(output, b.y_onehot);
  }};
  Batcher batcher(train_rows(), kBatch, kSeed);
  batcher.start_epoch(0);
  int steps = 0;
  while (batcher.next()) {
    const StepResult a = train_step(*with_default, adam_default, batcher.batch());
    const StepResult b = train_step(*with_custom, adam_custom, batcher.batch(), custom);
    EXPECT_EQ(a.loss, b.loss);
    ++steps;
  }
  EXPECT_EQ(calls, steps);
  expect_same_state(*with_default, *with_custom);

  // A loss that is not a scalar is refused, naming the step and the shape.
  const TrainStepOptions not_scalar{.loss = [](const Tensor& output, const Batch&) { return output; }};
  batcher.start_epoch(1);
  ASSERT_TRUE(batcher.next());
  try {
    train_step(*with_custom, adam_custom, batcher.batch(), not_scalar);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("train_step"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[32,10]"), std::string::npos) << e.what();
  }
}

// A module of one's own that is not registered cannot be saved, and the error says how.
class Unregistered : public Module {
 public:
  Unregistered() { conv_ = register_module("conv", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 2})); }
  Tensor forward(const Tensor& x) override { return (*conv_)(x); }
  std::string type_name() const override { return "Unregistered"; }

 private:
  std::shared_ptr<Conv2D> conv_;
};

TEST(TrainStep, AModuleOfOnesOwnSavesAndLoadsOnceRegistered) {
  static const bool registered = register_layer<ResidualNet>(
      "ResidualNet", 1, [](const ResidualNet&) { return nlohmann::json::object(); },
      [](const nlohmann::json&) { return std::make_shared<ResidualNet>(); });
  ASSERT_TRUE(registered);
  const fs::path dir = fs::temp_directory_path() / ("kiln_train_step_save_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "residual.h5").string();

  auto model = fresh_model(kSeed);
  Adam adam(model->named_parameters(), {});
  fit(*model, adam, train_rows(), {.epochs = 1, .batch_size = kBatch, .seed = kSeed, .quiet = true});
  save_model(path, *model, {28, 28, 1}, "residual");
  const LoadedModel loaded = load_model(path);
  ASSERT_NE(dynamic_cast<ResidualNet*>(loaded.model.get()), nullptr) << "loaded as " << loaded.model->type_name();
  EXPECT_EQ(loaded.name, "residual");
  expect_same_state(*model, *loaded.model);
  model->eval();
  const Tensor x = train_rows().x.slice(0, 16);
  const Tensor a = model->forward(x), b = loaded.model->forward(x);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()), 0);

  Unregistered other;
  try {
    save_model((dir / "other.h5").string(), other, {8, 8, 1});
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("Unregistered"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("register_layer"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "other.h5"));
  fs::remove_all(dir);
}

TEST(TrainStep, SummaryShowsTheLayersOfAModuleOfOnesOwn) {
  auto model = fresh_model(kSeed);
  const std::string s = summary(*model, {28, 28, 1}, "residual");
  for (const char* row : {"stem (Conv2D", "stem_bn (BatchNormalization", "conv (Conv2D", "bn (BatchNormalization",
                          "pool (MaxPooling2D", "head (Dense", "(output) (ResidualNet)", "(None, 10)"})
    EXPECT_NE(s.find(row), std::string::npos) << row << " missing from\n" << s;
  // stem 3*3*1*8+8, two batch norms of 4*8, conv 3*3*8*8+8, head 1568*10+10.
  EXPECT_EQ(model->count_trainable() + model->count_non_trainable(), 80 + 64 + 584 + 15690);
  EXPECT_NE(s.find("Total params: 16,418"), std::string::npos) << s;
}

}  // namespace
}  // namespace kiln
