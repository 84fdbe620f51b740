// Data-parallel training over MPI, run by ctest as `mpirun -np 2 --oversubscribe` (see
// tests/CMakeLists.txt): every rank runs these tests, and each compares the 2-rank result with
// the one-process result it computes itself on the same data.
//
// The model is the Task 1 CNN (conv, pool, conv, pool, dense: no batch norm, no dropout), so
// two ranks must train exactly like one process on the global batch, up to float rounding.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/zoo/lab_models.h"
#include "optim/adam.h"
#include "optim/train/checkpoint.h"
#include "optim/train/distributed/distributed.h"
#include "optim/train/fit.h"
#include "optim/sgd.h"

namespace kiln {
namespace {

const std::string kMnist = std::string(KILN_TEST_DATA_DIR) + "/mnist";

Dataset first_rows(int64_t n) {
  const ImageSet set = load_mnist(kMnist, "train");
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  return make_dataset(set, rows, 10);
}

// max |a - b| / max |b| over all parameters.
double relative_difference(const NamedTensors& a, const NamedTensors& b) {
  double diff = 0, scale = 0;
  for (size_t p = 0; p < a.size(); ++p)
    for (int64_t i = 0; i < a[p].second.numel(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(a[p].second.data()[i] - b[p].second.data()[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(b[p].second.data()[i])));
    }
  return diff / scale;
}

NamedTensors copies(const NamedTensors& tensors) {
  NamedTensors out;
  for (const auto& [name, t] : tensors) out.push_back({name, t.clone()});
  return out;
}

TEST(DataParallel, RunsOnTwoRanks) {
  ASSERT_TRUE(built_with_mpi());
  EXPECT_EQ(mpi_world().size(), 2) << "run under mpirun -np 2";
}

// One SGD step with learning rate 1 moves the weights by minus the gradient: the 2-rank step
// must move them exactly as one process does on the same global batch of 15 rows (shards of
// 7 and 8). Rank 1 starts from other weights: the broadcast from rank 0 must replace them.
TEST(DataParallel, AveragedGradientEqualsOneProcessGradient) {
  Communicator& comm = mpi_world();
  const Dataset data = first_rows(15);
  auto step = [&](Communicator* c, bool perturb) {
    manual_seed(11);
    auto model = task1_model();
    const NamedTensors before = copies(model->named_parameters());
    if (perturb)
      for (auto& [name, t] : model->named_parameters())
        for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += 1.0f;
    SGD sgd(model->named_parameters(), {.learning_rate = 1.0f});
    fit(*model, sgd, data, {.epochs = 1, .batch_size = 15, .shuffle = false, .quiet = true, .communicator = c});
    NamedTensors gradient = copies(before);
    const NamedTensors after = model->named_parameters();
    for (size_t p = 0; p < after.size(); ++p) {
      float* g = gradient[p].second.data();
      for (int64_t i = 0; i < after[p].second.numel(); ++i) g[i] -= after[p].second.data()[i];
    }
    return gradient;
  };
  const NamedTensors single = step(nullptr, false);
  const NamedTensors parallel = step(&comm, comm.rank() == 1);
  EXPECT_LE(relative_difference(parallel, single), 1e-5);
}

// Three epochs of Adam, batch 15 on 50 rows (the last batch 5 rows: shards of 2 and 3),
// shuffled: the weights end where one process puts them.
TEST(DataParallel, ShortTrainingRunEqualsOneProcess) {
  Communicator& comm = mpi_world();
  const Dataset data = first_rows(50);
  auto train = [&](Communicator* c) {
    manual_seed(12);
    auto model = task1_model();
    Adam adam(model->named_parameters(), {.learning_rate = 3e-3f});
    const History h = fit(*model, adam, data, {.epochs = 3, .batch_size = 15, .seed = 4, .quiet = true, .communicator = c});
    return std::make_pair(copies(model->named_parameters()), h);
  };
  const auto [single, single_history] = train(nullptr);
  const auto [parallel, parallel_history] = train(&comm);
  EXPECT_LE(relative_difference(parallel, single), 1e-4);
  // The epoch figures are over the whole global batch on every rank.
  ASSERT_EQ(parallel_history.epochs.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_NEAR(parallel_history.epochs[e].loss, single_history.epochs[e].loss, 1e-4);
    EXPECT_NEAR(parallel_history.epochs[e].accuracy, single_history.epochs[e].accuracy, 1e-12);
  }
}

// A 2-rank run that stops after 2 of 4 epochs (its checkpoint written by rank 0) resumes on 2
// ranks to the weights of an uninterrupted 2-rank run, and on 1 rank to within rounding.
TEST(DataParallel, CheckpointResumesOnTwoRanksAndOnOne) {
  Communicator& comm = mpi_world();
  const Dataset data = first_rows(60);
  // The ranks share a parent (the MPI launcher), so its pid names one directory for both.
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("kiln_mpi_" + std::to_string(getppid()));
  const std::string ckpt = (dir / "run.ckpt.h5").string();
  const std::string alone = (dir / ("alone" + std::to_string(comm.rank()) + ".ckpt.h5")).string();
  if (comm.rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  auto train = [&](Communicator* c, int64_t epochs, const std::string& path, bool resume) {
    manual_seed(13);
    auto model = task1_model();
    Adam adam(model->named_parameters(), {});
    FitOptions o{.epochs = epochs, .batch_size = 16, .seed = 6, .quiet = true};
    o.checkpoint_path = path;
    o.resume = resume;
    o.communicator = c;
    fit(*model, adam, data, o);
    return copies(model->named_parameters());
  };
  const NamedTensors whole = train(&comm, 4, "", false);
  train(&comm, 2, ckpt, false);  // fit returns on every rank once rank 0 has written it
  ASSERT_EQ(read_checkpoint(ckpt).epochs_done, 2);
  if (comm.rank() == 0)
    for (int r = 0; r < comm.size(); ++r)
      std::filesystem::copy_file(ckpt, dir / ("alone" + std::to_string(r) + ".ckpt.h5"));
  const NamedTensors resumed = train(&comm, 4, ckpt, true);
  EXPECT_EQ(relative_difference(resumed, whole), 0.0);
  // Each rank alone, from its own copy of the epoch-2 checkpoint.
  const NamedTensors resumed_alone = train(nullptr, 4, alone, true);
  EXPECT_LE(relative_difference(resumed_alone, whole), 1e-4);
}

// conv, batch norm, ReLU, pool, dense: a model whose gradient depends on how the batch is
// normalised.
std::shared_ptr<Sequential> batch_norm_model() {
  auto m = std::make_shared<Sequential>();
  m->add(conv_block(1, 1, 4, 0.0f));
  m->add(std::make_shared<Flatten>());
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 14 * 14 * 4, .units = 10, .activation = Activation::Softmax}));
  return m;
}

// With synchronised batch norm, a 2-rank SGD step (shards of 7 and 8 rows) moves the weights
// and the moving statistics as one process does on the whole batch of 15; with per-rank
// statistics (the default) it does not.
TEST(DataParallel, SyncBatchNormStepEqualsOneProcessStep) {
  Communicator& comm = mpi_world();
  const Dataset data = first_rows(15);
  // What one step changes: the parameters and the moving statistics.
  auto change = [](const NamedTensors& before, const NamedTensors& after) {
    NamedTensors moved = copies(before);
    for (size_t p = 0; p < after.size(); ++p)
      for (int64_t i = 0; i < after[p].second.numel(); ++i) moved[p].second.data()[i] -= after[p].second.data()[i];
    return moved;
  };
  auto step = [&](Communicator* c, bool sync) {
    manual_seed(15);
    auto model = batch_norm_model();
    const NamedTensors params = copies(model->named_parameters()), stats = copies(model->named_buffers());
    SGD sgd(model->named_parameters(), {.learning_rate = 1.0f});
    FitOptions o{.epochs = 1, .batch_size = 15, .shuffle = false, .quiet = true, .communicator = c};
    o.sync_batch_norm = sync;
    fit(*model, sgd, data, o);
    return std::make_pair(change(params, model->named_parameters()), change(stats, model->named_buffers()));
  };
  const auto [single, single_stats] = step(nullptr, false);
  const auto [synced, synced_stats] = step(&comm, true);
  EXPECT_LE(relative_difference(synced, single), 1e-5);
  EXPECT_LE(relative_difference(synced_stats, single_stats), 1e-5);
  const auto [per_rank, per_rank_stats] = step(&comm, false);
  EXPECT_GT(relative_difference(per_rank, single), 1e-3) << "per-rank statistics should change the step";
  EXPECT_GT(relative_difference(per_rank_stats, single_stats), 1e-3);
}

// A batch with fewer rows than ranks (31 rows in batches of 15 leave 1) is refused up front
// on every rank, before any rank waits for another.
TEST(DataParallel, SyncBatchNormRefusesABatchWithoutRowsForEveryRank) {
  Communicator& comm = mpi_world();
  const Dataset data = first_rows(31);
  manual_seed(16);
  auto model = batch_norm_model();
  SGD sgd(model->named_parameters(), {});
  FitOptions o{.epochs = 1, .batch_size = 15, .quiet = true, .communicator = &comm};
  o.sync_batch_norm = true;
  try {
    fit(*model, sgd, data, o);
    FAIL() << "fit went ahead with a batch of 1 row on 2 ranks";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("leave 1 in one"), std::string::npos) << e.what();
  }
}

// Ranks started with different data stop with an error naming the disagreement, on every rank.
TEST(DataParallel, RanksWithDifferentDataStopWithAClearError) {
  Communicator& comm = mpi_world();
  Dataset data = first_rows(30);
  if (comm.rank() == 1) data.labels[3] = (data.labels[3] + 1) % 10;
  manual_seed(14);
  auto model = task1_model();
  SGD sgd(model->named_parameters(), {});
  try {
    fit(*model, sgd, data, {.epochs = 1, .batch_size = 10, .quiet = true, .communicator = &comm});
    FAIL() << "fit went ahead with ranks that hold different data";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("disagree about the training data"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank(s) 1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
