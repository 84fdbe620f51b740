// StreamingDataset on the committed PCam slices: every row once per epoch with the pixels and
// labels make_dataset gives it, windows smaller than the file, seeded orders, the memory bound,
// starting the epoch it is at keeps its read-ahead, unlabelled splits, a damaged file's error
// through the reader thread, and training through it bit for bit like training from memory.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/formats/pcam.h"
#include "data/stream/streaming_dataset.h"
#include "layers/zoo/lab_models.h"
#include "optim/adam.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const std::string kSlice = std::string(KILN_TEST_DATA_DIR) + "/pcam";  // train.h5: 1,000 rows, chunks of 256

// Room for `window_blocks` blocks of 256 32x32x3 rows and three float batches of `batch` rows.
int64_t budget(int64_t window_blocks, int64_t batch) {
  return window_blocks * 256 * 3072 + 3 * batch * (3072 + 2) * 4;
}

// One epoch: the file rows in visiting order, checking each batch's pixels and labels
// against the in-memory dataset.
std::vector<int64_t> run_epoch(StreamingDataset& s, int64_t epoch, const Dataset& reference) {
  s.start_epoch(epoch);
  std::vector<int64_t> order;
  const int64_t row = 32 * 32 * 3;
  while (s.next()) {
    const Batch& b = s.batch();
    EXPECT_EQ(b.x.size(0), b.size());
    for (int64_t i = 0; i < b.size(); ++i) {
      const int64_t r = b.indices[i];
      order.push_back(r);
      EXPECT_EQ(std::memcmp(b.x.data() + i * row, reference.x.data() + r * row, sizeof(float) * row), 0)
          << "row " << r;
      EXPECT_EQ(b.labels[i], reference.labels[r]);
      EXPECT_EQ(b.y_onehot.data()[i * 2 + reference.labels[r]], 1.0f);
      EXPECT_EQ(b.y_onehot.data()[i * 2 + 1 - reference.labels[r]], 0.0f);
    }
  }
  return order;
}

TEST(StreamingDataset, EveryRowOncePerEpochWithThePixelsAndLabelsOfMakeDataset) {
  const Dataset reference = make_dataset(load_pcam(kSlice, "train", 0));
  StreamingDataset s(kSlice, "train", 0, {.batch_size = 48, .seed = 3, .memory_bytes = budget(2, 48)});
  EXPECT_EQ(s.rows(), 1000);
  EXPECT_EQ(s.num_classes(), 2);
  EXPECT_EQ(s.block_rows(), 256);
  EXPECT_EQ(s.window_rows(), 512);  // two of the four blocks: the file never is in memory at once
  EXPECT_LE(s.buffer_bytes(), budget(2, 48));
  EXPECT_EQ(s.batches_per_epoch(), 21);  // 20 of 48 and the remainder, 40
  for (int64_t epoch : {0, 1}) {
    const std::vector<int64_t> order = run_epoch(s, epoch, reference);
    ASSERT_EQ(order.size(), 1000u);
    EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 1000u);
  }
}

TEST(StreamingDataset, OrderDependsOnSeedAndEpochOnlyAndNoShuffleIsFileOrder) {
  const Dataset reference = make_dataset(load_pcam(kSlice, "train", 0));
  const StreamOptions o{.batch_size = 64, .seed = 7, .memory_bytes = budget(1, 64)};
  StreamingDataset a(kSlice, "train", 0, o), b(kSlice, "train", 0, o);
  StreamingDataset other(kSlice, "train", 0, {.batch_size = 64, .seed = 8, .memory_bytes = budget(1, 64)});
  const std::vector<int64_t> a1 = run_epoch(a, 1, reference);
  run_epoch(b, 0, reference);  // b has seen another epoch first: epoch 1 is still the same
  EXPECT_EQ(run_epoch(b, 1, reference), a1);
  EXPECT_NE(run_epoch(a, 2, reference), a1);
  EXPECT_NE(run_epoch(other, 1, reference), a1);
  // Rows are shuffled across the window, not only block by block: the first batch of 64
  // (one window is one block here) is not 64 consecutive rows.
  EXPECT_NE(a1[63] - a1[0], 63);

  StreamingDataset plain(kSlice, "train", 0, {.batch_size = 64, .shuffle = false, .memory_bytes = budget(1, 64)});
  const std::vector<int64_t> order = run_epoch(plain, 0, reference);
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(order[i], i);

  // max_rows: the file's first rows only, shuffled among themselves.
  StreamingDataset head(kSlice, "train", 0, {.batch_size = 64, .seed = 7, .memory_bytes = budget(1, 64), .max_rows = 300});
  EXPECT_EQ(head.rows(), 300);
  const std::vector<int64_t> head_order = run_epoch(head, 0, reference);
  ASSERT_EQ(head_order.size(), 300u);
  EXPECT_EQ(*std::max_element(head_order.begin(), head_order.end()), 299);
  EXPECT_EQ(std::set<int64_t>(head_order.begin(), head_order.end()).size(), 300u);
}

TEST(StreamingDataset, AnEpochLeftEarlyAndARestartAreClean) {
  const Dataset reference = make_dataset(load_pcam(kSlice, "train", 0));
  StreamingDataset s(kSlice, "train", 0, {.batch_size = 32, .seed = 1, .memory_bytes = budget(1, 32)});
  s.start_epoch(0);
  ASSERT_TRUE(s.next());
  const std::vector<int64_t> first = s.batch().indices;
  ASSERT_TRUE(s.next());
  // Restarting the same epoch midway gives its batches again from the start.
  s.start_epoch(0);
  ASSERT_TRUE(s.next());
  EXPECT_EQ(s.batch().indices, first);
  EXPECT_EQ(run_epoch(s, 0, reference).size(), 1000u);
  s.start_epoch(5);
  ASSERT_TRUE(s.next());  // destroyed mid-epoch with the reader thread waiting: no hang
}

TEST(StreamingDataset, StartingTheEpochItIsAtKeepsWhatWasReadAhead) {
  const Dataset reference = make_dataset(load_pcam(kSlice, "train", 0));
  // One block of 256 rows a window: four windows an epoch.
  StreamingDataset s(kSlice, "train", 0, {.batch_size = 32, .seed = 4, .memory_bytes = budget(1, 32)});
  // The constructor started epoch 0: wait until its reader has read the first window.
  for (int i = 0; i < 20000 && s.windows_read() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(s.windows_read(), 1);
  const std::vector<int64_t> order = run_epoch(s, 0, reference);  // fit's start_epoch(0)
  EXPECT_EQ(order.size(), 1000u);
  EXPECT_EQ(s.windows_read(), 4);  // not 5: the first window was not read again

  // The same order as a dataset whose epoch 0 was restarted from scratch.
  StreamingDataset fresh(kSlice, "train", 0, {.batch_size = 32, .seed = 4, .memory_bytes = budget(1, 32)});
  fresh.start_epoch(3);
  EXPECT_EQ(run_epoch(fresh, 0, reference), order);

  // Once a batch of the epoch has been taken, starting it again reads it again from the start.
  s.start_epoch(0);
  ASSERT_TRUE(s.next());
  const std::vector<int64_t> first = s.batch().indices;
  EXPECT_EQ(std::vector<int64_t>(order.begin(), order.begin() + 32), first);
  const int64_t before = s.windows_read();
  EXPECT_EQ(run_epoch(s, 0, reference), order);
  EXPECT_EQ(s.windows_read(), before + 4);
}

TEST(StreamingDataset, TooLittleMemoryIsRefusedSayingWhatItNeeds) {
  try {
    StreamingDataset s(kSlice, "train", 0, {.batch_size = 32, .memory_bytes = 100000});
    FAIL() << "accepted 100,000 bytes";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("train.h5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("needs at least " + std::to_string(256 * 3072 + 3 * 32 * (3072 + 2) * 4)), std::string::npos)
        << msg;
  }
  EXPECT_NO_THROW(StreamingDataset(kSlice, "train", 0, {.batch_size = 32, .memory_bytes = budget(1, 32)}));
}

TEST(StreamingDataset, UnlabelledSplitStreamsImagesForPrediction) {
  const ImageSet test = load_pcam(kSlice, "test", 0);
  StreamingDataset s(kSlice, "test", 0,
                     {.batch_size = 100, .shuffle = false, .memory_bytes = budget(1, 100), .num_classes = 2});
  EXPECT_EQ(s.rows(), test.n);
  EXPECT_EQ(s.num_classes(), 0);
  s.start_epoch(0);
  int64_t rows = 0;
  while (s.next()) {
    EXPECT_TRUE(s.batch().labels.empty());
    EXPECT_FALSE(s.batch().y_onehot.defined());
    rows += s.batch().size();
  }
  EXPECT_EQ(rows, test.n);

  manual_seed(1);
  auto model = task3_model(32, 32, 3, 2);
  const Tensor from_memory = predict(*model, scale_pixels(test), 64);
  StreamingDataset shuffled(kSlice, "test", 0, {.batch_size = 64, .seed = 4, .memory_bytes = budget(1, 64)});
  const Tensor streamed = predict(*model, shuffled);  // rows put back in file order
  ASSERT_EQ(streamed.shape(), from_memory.shape());
  for (int64_t i = 0; i < streamed.numel(); ++i) ASSERT_NEAR(streamed.data()[i], from_memory.data()[i], 1e-5f) << i;
}

TEST(StreamingDataset, ADamagedChunkIsAFileErrorFromNextNotACrash) {
  std::string dir = (fs::temp_directory_path() / "kiln-test-stream-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/train.h5";
  fs::copy_file(kSlice + "/train.h5", path);
  {
    // Overwrite bytes in the middle of the file: inside a compressed chunk after the first.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(path) * 3 / 5));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  bool failed = false;
  try {
    StreamingDataset s(dir, "train", 0, {.batch_size = 50, .shuffle = false, .memory_bytes = budget(1, 50)});
    while (s.next()) {
    }
  } catch (const FileError& e) {
    failed = true;
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(failed) << "a file with 4 KB overwritten read without an error";
  fs::remove_all(dir);
}

TEST(StreamingDataset, TrainingThroughItEqualsTrainingFromMemoryBitForBit) {
  // In file order, without augmentation, the batches are the same rows and pixels, so fit must
  // give the same weights, history and evaluation.
  const Dataset train = make_dataset(load_pcam(kSlice, "train", 0));
  auto run = [&](bool streamed) {
    manual_seed(11);
    auto model = task3_model(32, 32, 3, 2);
    AdamW adamw(model->named_parameters());
    FitOptions o{.epochs = 1, .batch_size = 70, .steps_per_epoch = 6, .shuffle = false, .seed = 2, .quiet = true};
    History h;
    Evaluation e;
    if (streamed) {
      StreamingDataset s(kSlice, "train", 0, {.batch_size = 70, .shuffle = false, .memory_bytes = budget(1, 70)});
      h = fit(*model, adamw, s, o);
      StreamingDataset v(kSlice, "valid", 0, {.batch_size = 128, .shuffle = false, .memory_bytes = budget(1, 128)});
      e = evaluate(*model, v, true);
    } else {
      h = fit(*model, adamw, train, o);
      e = evaluate(*model, make_dataset(load_pcam(kSlice, "valid", 0)), 128, true);
    }
    NamedTensors state = model->named_parameters();
    for (auto& buffer : model->named_buffers()) state.push_back(buffer);
    return std::make_tuple(state, h.epochs.back().loss, e.loss, e.auc);
  };
  const auto [w_mem, loss_mem, eval_mem, auc_mem] = run(false);
  const auto [w_str, loss_str, eval_str, auc_str] = run(true);
  EXPECT_EQ(loss_str, loss_mem);
  EXPECT_EQ(eval_str, eval_mem);
  EXPECT_EQ(auc_str, auc_mem);
  ASSERT_EQ(w_str.size(), w_mem.size());
  for (size_t i = 0; i < w_mem.size(); ++i) {
    const Tensor& t = w_mem[i].second;
    const Tensor& u = w_str[i].second;
    ASSERT_EQ(u.numel(), t.numel()) << w_mem[i].first;
    EXPECT_EQ(std::memcmp(u.data(), t.data(), sizeof(float) * t.numel()), 0) << w_mem[i].first;
  }
}

TEST(Fit, StepsPerEpochStopsEachEpochThere) {
  StreamingDataset s(kSlice, "train", 0, {.batch_size = 20, .seed = 1, .memory_bytes = budget(1, 20)});
  manual_seed(3);
  auto model = task3_model(32, 32, 3, 2);
  AdamW adamw(model->named_parameters());
  std::map<int64_t, int64_t> steps;
  FitOptions o{.epochs = 2, .batch_size = 20, .steps_per_epoch = 3, .seed = 1, .quiet = true};
  o.on_batch_end = [&](int64_t epoch, int64_t, const StepResult&) { ++steps[epoch]; };
  fit(*model, adamw, s, o);
  EXPECT_EQ(steps, (std::map<int64_t, int64_t>{{0, 3}, {1, 3}}));
  FitOptions wrong = o;
  wrong.batch_size = 32;
  EXPECT_THROW(fit(*model, adamw, s, wrong), std::invalid_argument);  // the source's batches are 20
}

}  // namespace
}  // namespace kiln
