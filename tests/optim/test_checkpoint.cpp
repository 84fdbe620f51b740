// Checkpoints and resume in fit(): a run interrupted after any epoch and resumed from its
// checkpoint ends bit-identical to one that never stopped (weights, moving statistics,
// optimizer state, history); a checkpoint that does not fit the model, or a damaged one, is
// refused with the file's name and changes nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "data/dataset.h"
#include "data/formats/idx.h"
#include "data/lab/lab_augmentation.h"
#include "layers/zoo/lab_models.h"
#include "layers/io/model_file.h"
#include "optim/adam.h"
#include "optim/train/checkpoint.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
const std::string kMnist = std::string(KILN_TEST_DATA_DIR) + "/mnist";

Dataset small_train() {
  const ImageSet raw = load_mnist(kMnist, "train");
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < 48; ++i) rows.push_back(i);
  Dataset d = make_dataset(raw, rows, 10);
  return d;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_checkpoint_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

void expect_same_tensors(const NamedTensors& a, const NamedTensors& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first) << what;
    EXPECT_TRUE(bitwise_equal(a[i].second, b[i].second)) << what << " " << a[i].first << " differs";
  }
}

void expect_same_history(const History& a, const History& b) {
  ASSERT_EQ(a.epochs.size(), b.epochs.size());
  for (size_t i = 0; i < a.epochs.size(); ++i) {
    const EpochLog &x = a.epochs[i], &y = b.epochs[i];
    EXPECT_EQ(x.epoch, y.epoch);
    // Exact: the same arithmetic in the same order, not merely close.
    EXPECT_EQ(x.loss, y.loss) << "epoch " << x.epoch;
    EXPECT_EQ(x.accuracy, y.accuracy) << "epoch " << x.epoch;
    EXPECT_EQ(x.validated, y.validated) << "epoch " << x.epoch;
    EXPECT_EQ(x.val_loss, y.val_loss) << "epoch " << x.epoch;
    EXPECT_EQ(x.val_accuracy, y.val_accuracy) << "epoch " << x.epoch;
  }
}

// The lab's Task 2 model (batch norm, dropout, L2) with its augmentation and Adam: every kind
// of state a checkpoint must carry.
struct Trainer {
  std::shared_ptr<Sequential> model;
  std::unique_ptr<Adam> adam;
  Trainer() {
    manual_seed(11);
    model = task2_model();
    adam = std::make_unique<Adam>(model->named_parameters());
  }
};

constexpr int64_t kEpochs = 3;

FitOptions options(const Dataset& valid, const Augmentation& aug, const std::string& path) {
  return {.epochs = kEpochs, .batch_size = 16, .validation = &valid, .validation_freq = 2, .seed = 7,
          .quiet = true, .augmentation = &aug, .on_epoch_begin = {}, .validate = {}, .checkpoint_path = path,
          .checkpoint_every = 1, .checkpoint_note = "{\"app\":\"test\"}", .resume = true};
}

TEST(Checkpoint, ResumeAfterEveryEpochIsBitIdentical) {
  const Dataset train = small_train();
  const Dataset& valid = train;
  const Augmentation aug = task2_augmentation();

  Trainer whole;
  const History want = fit(*whole.model, *whole.adam, train, options(valid, aug, ""));

  for (int64_t stop_after = 1; stop_after < kEpochs; ++stop_after) {
    const std::string path = scratch("resume_" + std::to_string(stop_after) + ".ckpt.h5").string();
    fs::remove(path);
    {
      // Interrupted: the hook throws when epoch `stop_after` (0-based) is about to begin, so
      // the checkpoint after epoch `stop_after` is the last one written.
      Trainer first;
      FitOptions o = options(valid, aug, path);
      o.on_epoch_begin = [&](int64_t epoch, Optimizer&) {
        if (epoch == stop_after) throw std::runtime_error("interrupted");
      };
      EXPECT_THROW(fit(*first.model, *first.adam, train, o), std::runtime_error);
      EXPECT_EQ(read_checkpoint(path).epochs_done, stop_after);
      EXPECT_EQ(read_checkpoint(path).note, "{\"app\":\"test\"}");
    }
    Trainer resumed;  // a fresh process: same construction, then the checkpoint
    const History got = fit(*resumed.model, *resumed.adam, train, options(valid, aug, path));
    SCOPED_TRACE("stopped after epoch " + std::to_string(stop_after));
    expect_same_history(got, want);
    expect_same_tensors(resumed.model->named_parameters(), whole.model->named_parameters(), "parameters");
    expect_same_tensors(resumed.model->named_buffers(), whole.model->named_buffers(), "buffers");
    expect_same_tensors(resumed.adam->state(), whole.adam->state(), "optimizer state");
  }
}

TEST(Checkpoint, AFinishedRunResumesWithoutTraining) {
  const Dataset train = small_train();
  const Augmentation aug = task2_augmentation();
  const std::string path = scratch("finished.ckpt.h5").string();
  fs::remove(path);
  Trainer a;
  const History want = fit(*a.model, *a.adam, train, options(train, aug, path));
  Trainer b;
  FitOptions o = options(train, aug, path);
  int64_t epochs_begun = 0;
  o.on_epoch_begin = [&](int64_t, Optimizer&) { ++epochs_begun; };
  const History got = fit(*b.model, *b.adam, train, o);
  EXPECT_EQ(epochs_begun, 0);
  expect_same_history(got, want);
  expect_same_tensors(b.model->named_parameters(), a.model->named_parameters(), "parameters");
}

TEST(Checkpoint, AnotherModelIsRefusedAndLeftUntouched) {
  const Dataset train = small_train();
  const Augmentation aug = task2_augmentation();
  const std::string path = scratch("task2.ckpt.h5").string();
  fs::remove(path);
  {
    Trainer a;
    FitOptions o = options(train, aug, path);
    o.epochs = 1;
    fit(*a.model, *a.adam, train, o);
  }
  manual_seed(3);
  auto other = task1_model();
  Adam adam(other->named_parameters());
  const NamedTensors before = other->named_parameters();
  std::vector<Tensor> copies;
  for (const auto& [n, t] : before) copies.push_back(t.clone());
  try {
    fit(*other, adam, train, {.epochs = 2, .batch_size = 16, .quiet = true, .checkpoint_path = path, .resume = true});
    FAIL() << "resumed a Task 2 checkpoint into the Task 1 model";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(bitwise_equal(before[i].second, copies[i])) << before[i].first;
  EXPECT_EQ(adam.iterations(), 0);
}

// Odd versus even digits: a binary problem, so fit keeps the epoch's AUC scores, which a
// checkpoint inside an epoch must carry too.
Dataset odd_or_even(const Dataset& digits) {
  Dataset d = digits;
  d.num_classes = 2;
  d.y_onehot = Tensor::zeros({d.size(), 2});
  for (int64_t i = 0; i < d.size(); ++i) {
    d.labels[static_cast<size_t>(i)] %= 2;
    d.y_onehot.data()[i * 2 + d.labels[static_cast<size_t>(i)]] = 1.0f;
  }
  return d;
}

TEST(Checkpoint, StopRequestedInsideAnEpochResumesBitIdentical) {
  const Dataset train = odd_or_even(small_train());  // 48 rows: 3 steps an epoch
  const Augmentation aug = task2_augmentation();
  auto trainer = [] {
    manual_seed(11);
    Trainer t;
    t.model = task2_model(28, 28, 1, 2);
    t.adam = std::make_unique<Adam>(t.model->named_parameters());
    return t;
  };
  auto binary_options = [&](const std::string& path) {
    FitOptions o = options(train, aug, path);
    o.auc = true;
    o.checkpoint_every = 0;  // only the stop writes one before the end
    return o;
  };
  Trainer whole = trainer();
  const History want = fit(*whole.model, *whole.adam, train, binary_options(""));

  // After step 1 (inside epoch 1), 3 (the last step of epoch 1, before its validation and
  // end) and 5 (inside epoch 2, after a validation-free epoch end).
  for (int64_t stop_at : {1, 3, 5}) {
    SCOPED_TRACE("stopped after step " + std::to_string(stop_at));
    const std::string path = scratch("stop_" + std::to_string(stop_at) + ".ckpt.h5").string();
    fs::remove(path);
    {
      Trainer first = trainer();
      FitOptions o = binary_options(path);
      int64_t steps = 0;
      o.on_batch_end = [&](int64_t, int64_t, const StepResult&) { ++steps; };
      o.stop_requested = [&] { return steps == stop_at; };
      const History h = fit(*first.model, *first.adam, train, o);
      EXPECT_TRUE(h.stopped);
      EXPECT_EQ(h.stopped_epoch, (stop_at - 1) / 3 + 1);
      EXPECT_EQ(h.stopped_step, (stop_at - 1) % 3 + 1);
      const Checkpoint c = read_checkpoint(path);
      EXPECT_EQ(c.epochs_done, (stop_at - 1) / 3);
      EXPECT_EQ(c.in_epoch.steps_done, (stop_at - 1) % 3 + 1);
      EXPECT_EQ(c.in_epoch.scores.size(), static_cast<size_t>(c.in_epoch.seen));
    }
    Trainer resumed = trainer();
    const History got = fit(*resumed.model, *resumed.adam, train, binary_options(path));
    EXPECT_FALSE(got.stopped);
    expect_same_history(got, want);
    for (size_t i = 0; i < got.epochs.size(); ++i) EXPECT_EQ(got.epochs[i].auc, want.epochs[i].auc) << "epoch " << i + 1;
    expect_same_tensors(resumed.model->named_parameters(), whole.model->named_parameters(), "parameters");
    expect_same_tensors(resumed.model->named_buffers(), whole.model->named_buffers(), "buffers");
    expect_same_tensors(resumed.adam->state(), whole.adam->state(), "optimizer state");
  }
}

TEST(Checkpoint, DamagedFilesNameTheFile) {
  const Dataset train = small_train();
  const Augmentation aug = task2_augmentation();
  const std::string good = scratch("good.ckpt.h5").string();
  fs::remove(good);
  Trainer a;
  FitOptions o = options(train, aug, good);
  o.epochs = 1;
  fit(*a.model, *a.adam, train, o);

  const std::string truncated = scratch("truncated.ckpt.h5").string();
  fs::copy_file(good, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, fs::file_size(good) / 2);
  const std::string text = scratch("text.ckpt.h5").string();
  std::ofstream(text) << "not a checkpoint\n";
  const std::string model_file = scratch("model.h5").string();
  save_model(model_file, *a.model, {28, 28, 1});
  for (const std::string& path : {truncated, text, model_file, scratch("missing.ckpt.h5").string()}) {
    try {
      read_checkpoint(path);
      ADD_FAILURE() << path << " was read as a checkpoint";
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Checkpoint, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const Dataset train = small_train();
  const Augmentation aug = task2_augmentation();
  const std::string path = scratch("diverged.ckpt.h5").string();
  fs::remove(path);
  Trainer a;
  FitOptions o = options(train, aug, path);
  // A sane first epoch, then a learning rate that blows the weights up.
  o.on_epoch_begin = [](int64_t epoch, Optimizer& opt) {
    if (epoch == 1) opt.set_learning_rate(1e30f);
  };
  try {
    fit(*a.model, *a.adam, train, o);
    FAIL() << "training went on with a non-finite loss";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("epoch 2"), std::string::npos) << what;
    EXPECT_NE(what.find("step"), std::string::npos) << what;
  }
  const Checkpoint kept = read_checkpoint(path);
  EXPECT_EQ(kept.epochs_done, 1);
  for (const auto& [name, t] : kept.parameters)
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_TRUE(std::isfinite(t.data()[i])) << name;
}

TEST(Checkpoint, WritingReplacesTheFileWhole) {
  // The previous checkpoint stays readable until the new one is renamed over it, and no
  // temporary file is left behind.
  const Dataset train = small_train();
  const Augmentation aug = task2_augmentation();
  const fs::path dir = scratch("whole");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "run.ckpt.h5").string();
  Trainer a;
  FitOptions o = options(train, aug, path);
  o.epochs = 2;
  o.on_epoch_begin = [&](int64_t epoch, Optimizer&) {
    if (epoch == 1) EXPECT_EQ(read_checkpoint(path).epochs_done, 1);
  };
  fit(*a.model, *a.adam, train, o);
  EXPECT_EQ(read_checkpoint(path).epochs_done, 2);
  int64_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().filename().string(), "run.ckpt.h5");
  }
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace kiln
