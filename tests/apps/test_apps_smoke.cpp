// Smoke test of the three task apps: each runs with --quick on the committed data slices
// (tests/testdata) into a temporary directory, and everything it promises to write must be there
// and parse: results.json with its keys, history.csv per run, the curve PNGs, task1's weights,
// task3's predictions.csv. Bad input must give a clear message and a non-zero exit, never a
// crash.
//
// The apps run with one thread and task2/task3 with fewer epochs or images than --quick's
// defaults: about a minute in all, and ctest may run other tests beside this one, where two
// OpenMP threads per app would fight over the two cores.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app_runner.h"
#include "core/io/png_image.h"
#include "layers/io/model_file.h"
#include "optim/train/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using kiln::testing_apps::history_without_seconds;
using kiln::testing_apps::kApps;
using kiln::testing_apps::read_lines;
using kiln::testing_apps::Result;
using kiln::testing_apps::run_app;
const std::string kData = KILN_TEST_DATA_DIR;

json read_json(const fs::path& path) {
  std::ifstream f(path);
  return json::parse(f);  // throws (failing the test) on a malformed file
}

void expect_fraction(const json& j, const std::string& what) {
  ASSERT_TRUE(j.is_number()) << what << " is not a number: " << j.dump();
  EXPECT_GE(j.get<double>(), 0.0) << what;
  EXPECT_LE(j.get<double>(), 1.0) << what;
}

void expect_figures(const json& j, const std::string& what, bool auc) {
  ASSERT_TRUE(j.is_object()) << what;
  ASSERT_TRUE(j.contains("loss") && j["loss"].is_number()) << what;
  EXPECT_GE(j["loss"].get<double>(), 0.0) << what;
  expect_fraction(j["accuracy"], what + ".accuracy");
  if (auc && !j["auc"].is_null()) expect_fraction(j["auc"], what + ".auc");
}

void expect_common(const json& r) {
  for (const char* key : {"settings", "wall_seconds", "threads", "kiln_version", "report"})
    EXPECT_TRUE(r.contains(key)) << "results.json lacks " << key;
  EXPECT_GT(r["wall_seconds"].get<double>(), 0.0);
  EXPECT_GE(r["threads"].get<int>(), 1);
  EXPECT_TRUE(r["settings"]["quick"].get<bool>());
}

// A run's history.csv: a header with the expected columns, then one row per epoch.
void expect_history(const fs::path& path, int64_t epochs, bool auc) {
  ASSERT_TRUE(fs::exists(path)) << path;
  const std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(static_cast<int64_t>(lines.size()), epochs + 1) << path;
  EXPECT_EQ(lines[0].rfind(auc ? "epoch,loss,accuracy,auc," : "epoch,loss,accuracy,", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("1,", 0), 0u) << lines[1];
}

void expect_png(const fs::path& path) {
  ASSERT_TRUE(fs::exists(path)) << path;
  const kiln::PngImage img = kiln::read_png(path.string());
  EXPECT_GE(img.width, 400);
  EXPECT_GE(img.height, 150);
  EXPECT_EQ(img.channels, 3);
}

// No "*.tmp*" file may survive a finished run.
void expect_no_temporaries(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

class AppsSmoke : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("kiln_apps_smoke_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path dir_;
};
fs::path AppsSmoke::dir_;

TEST_F(AppsSmoke, Task1QuickWritesEverythingAndBothPathsAgree) {
  const fs::path out = dir_ / "task1";
  const Result r = run_app("task1", "--quick --threads 1 --data-dir '" + kData + "/mnist' --out '" + out.string() + "'",
                           dir_ / "task1.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Table 1"), std::string::npos);
  EXPECT_NE(r.output.find("Table 2"), std::string::npos);
  EXPECT_NE(r.output.find("agree to every printed digit: yes"), std::string::npos) << r.output;

  const json res = read_json(out / "results.json");
  expect_common(res);
  EXPECT_EQ(res["params"].get<int64_t>(), 4266);
  expect_figures(res["train"], "train", false);
  expect_figures(res["test"], "test", false);
  expect_figures(res["reference"]["train"], "reference.train", false);
  expect_figures(res["reference"]["test"], "reference.test", false);
  EXPECT_LT(res["max_abs_diff"].get<double>(), 1e-4);
  EXPECT_NEAR(res["reference"]["test"]["accuracy"].get<double>(), res["test"]["accuracy"].get<double>(), 1e-3);
  ASSERT_EQ(res["layer_check"].size(), 4u);
  for (const json& c : res["layer_check"]) EXPECT_LT(c["abs_diff"].get<double>(), 1e-2) << c.dump();
  const int64_t epochs = res["settings"]["epochs"].get<int64_t>();
  expect_history(out / "run1" / "history.csv", epochs, false);
  expect_png(out / "run1" / "curves.png");
  EXPECT_TRUE(fs::exists(out / "run1" / "model.h5"));
  expect_no_temporaries(out);
  // The run's model file goes straight into `kiln evaluate`, which gets the test accuracy the
  // app reported: the same model on the same test images, scaled as the lab scales them.
  const Result eval = run_app("kiln", "evaluate '" + (out / "run1" / "model.h5").string() + "' --data-dir '" +
                                          kData + "/mnist' --scale 2/255 --shift -1 --json '" +
                                          (dir_ / "eval.json").string() + "'",
                              dir_ / "kiln-evaluate.log");
  ASSERT_EQ(eval.status, 0) << eval.output;
  const json ev = read_json(dir_ / "eval.json");
  EXPECT_EQ(ev["format"].get<std::string>(), "kiln");
  EXPECT_DOUBLE_EQ(ev["accuracy"].get<double>(), res["test"]["accuracy"].get<double>());
}

// --inspect and --tensorboard: the run's final model gets the inspection set, and fit's event
// file lands in the run's TensorBoard directory (their contents are checked in tests/optim).
TEST_F(AppsSmoke, Task1InspectAndTensorBoardFlags) {
  const fs::path out = dir_ / "task1_inspect";
  const Result r = run_app("task1", "--quick --epochs 1 --threads 1 --data-dir '" + kData + "/mnist' --out '" + out.string() +
                                        "' --inspect --tensorboard '" + (out / "tb").string() + "'",
                           dir_ / "task1_inspect.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("inspect: "), std::string::npos) << r.output;
  for (const char* f : {"confusion.png", "confusion.csv", "filters-conv2d.png", "worst.png", "layer-stats.csv"})
    EXPECT_TRUE(fs::exists(out / "run1" / "inspect" / f)) << f;
  expect_png(out / "run1" / "inspect" / "confusion.png");
  bool events = false;
  for (const auto& e : fs::directory_iterator(out / "tb" / "run1"))
    events |= e.path().filename().string().rfind("events.out.tfevents.", 0) == 0 && fs::file_size(e.path()) > 100;
  EXPECT_TRUE(events) << "no TensorBoard event file in " << (out / "tb" / "run1");
  expect_no_temporaries(out);
}

// Run r uses seed base + r - 1, so `--seed S --runs 1` repeats the run that had seed S.
TEST_F(AppsSmoke, Task1RunRepeatsFromItsSeed) {
  const std::string common = "--quick --train-images 1000 --epochs 1 --threads 1 --data-dir '" + kData + "/mnist'";
  const fs::path a = dir_ / "seed_a", b = dir_ / "seed_b";
  ASSERT_EQ(run_app("task1", common + " --seed 3 --runs 2 --out '" + a.string() + "'", dir_ / "a.log").status, 0);
  ASSERT_EQ(run_app("task1", common + " --seed 4 --out '" + b.string() + "'", dir_ / "b.log").status, 0);
  const json ra = read_json(a / "results.json"), rb = read_json(b / "results.json");
  ASSERT_EQ(ra["runs"].size(), 2u);
  EXPECT_EQ(ra["runs"][1]["seed"].get<int64_t>(), 4);
  EXPECT_EQ(ra["runs"][1]["train"], rb["runs"][0]["train"]);
  EXPECT_EQ(ra["runs"][1]["test"], rb["runs"][0]["test"]);
}

TEST_F(AppsSmoke, Task2QuickWritesEveryRun) {
  const fs::path out = dir_ / "task2";
  const Result r = run_app("task2",
                           "--quick --threads 1 --epochs 6 --validation-freq 3 --data-dir '" + kData +
                               "/mnist' --out '" + out.string() + "'",
                           dir_ / "task2.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Table 3"), std::string::npos);
  const json res = read_json(out / "results.json");
  expect_common(res);
  const int64_t runs = res["settings"]["runs"].get<int64_t>();
  const int64_t epochs = res["settings"]["epochs"].get<int64_t>();
  ASSERT_EQ(static_cast<int64_t>(res["runs"].size()), runs);
  ASSERT_GE(runs, 2);
  for (int64_t i = 0; i < runs; ++i) {
    const json& run = res["runs"][i];
    EXPECT_EQ(run["seed"].get<int64_t>(), 1 + i);
    expect_figures(run["train"], "runs[" + std::to_string(i) + "].train", false);
    expect_figures(run["test"], "runs[" + std::to_string(i) + "].test", false);
    const fs::path run_dir = out / ("run" + std::to_string(i + 1));
    expect_history(run_dir / "history.csv", epochs, false);
    expect_png(run_dir / "curves.png");
  }
  EXPECT_TRUE(res["complete"].get<bool>());
  expect_fraction(res["test_accuracy_mean"], "test_accuracy_mean");
  EXPECT_GE(res["test_accuracy_std"].get<double>(), 0.0);
  expect_no_temporaries(out);
}

TEST_F(AppsSmoke, Task3QuickWritesPredictionsForEveryTestImage) {
  const fs::path out = dir_ / "task3";
  const Result r = run_app("task3",
                           "--quick --threads 1 --train-images 280 --valid-images 100 --data-dir '" +
                               kData + "/pcam' --out '" + out.string() + "'",
                           dir_ / "task3.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Table 4"), std::string::npos);
  const json res = read_json(out / "results.json");
  expect_common(res);
  const int64_t epochs = res["settings"]["epochs"].get<int64_t>();
  ASSERT_GE(res["runs"].size(), 1u);
  for (size_t i = 0; i < res["runs"].size(); ++i) {
    const json& run = res["runs"][i];
    EXPECT_TRUE(run.contains("seed"));
    expect_figures(run["train"], "train", true);
    expect_figures(run["valid"], "valid", true);
    expect_history(out / ("run" + std::to_string(i + 1)) / "history.csv", epochs, true);
    expect_png(out / ("run" + std::to_string(i + 1)) / "curves.png");
  }
  EXPECT_TRUE(res["complete"].get<bool>());
  ASSERT_TRUE(res["predictions"].is_string());
  const std::vector<std::string> lines = read_lines(out / res["predictions"].get<std::string>());
  const int64_t n_test = res["runs"][0]["images"]["test"].get<int64_t>();
  EXPECT_EQ(n_test, 300);  // tests/testdata/pcam/test_x.h5
  ASSERT_EQ(static_cast<int64_t>(lines.size()), n_test + 1);
  EXPECT_EQ(lines[0], "id,class");
  for (int64_t i = 0; i < n_test; ++i) {
    const std::string& l = lines[static_cast<size_t>(i + 1)];
    EXPECT_TRUE(l == std::to_string(i) + ",0" || l == std::to_string(i) + ",1") << l;
  }
  expect_no_temporaries(out);
}

// --stream-memory: every split read from its file while training, a bounded number of steps,
// the final figures over the first --train-eval-images, predictions for every test patch in
// file order, and the streamed run's throughput and memory in results.json.
TEST_F(AppsSmoke, Task3StreamedFromTheFilesTrainsBoundedStepsAndPredictsEveryTestImage) {
  const fs::path out = dir_ / "task3-stream";
  const Result r = run_app("task3",
                           "--threads 1 --stream-memory 16 --steps-per-epoch 2 --epochs 1 --runs 1 --batch-size 20 "
                           "--train-eval-images 50 --data-dir '" + kData + "/pcam' --out '" + out.string() + "'",
                           dir_ / "task3-stream.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("streamed: windows of"), std::string::npos) << r.output;
  const json res = read_json(out / "results.json");
  EXPECT_GT(res["wall_seconds"].get<double>(), 0.0);
  EXPECT_EQ(res["settings"]["stream_memory_mb"].get<int64_t>(), 16);
  const json& run = res["runs"][0];
  EXPECT_EQ(run["training"]["steps"].get<int64_t>(), 2);
  EXPECT_EQ(run["training"]["images"].get<int64_t>(), 40);
  EXPECT_GT(run["training"]["images_per_second"].get<double>(), 0.0);
  EXPECT_GT(run["training"]["peak_rss_mib"].get<double>(), 0.0);
  EXPECT_EQ(run["images"]["train"].get<int64_t>(), 1000);
  expect_figures(run["train"], "train", true);
  expect_figures(run["valid"], "valid", true);
  const std::vector<std::string> lines = read_lines(out / "predictions.csv");
  ASSERT_EQ(lines.size(), 301u);
  for (int64_t i = 0; i < 300; ++i) {
    const std::string& l = lines[static_cast<size_t>(i + 1)];
    EXPECT_TRUE(l == std::to_string(i) + ",0" || l == std::to_string(i) + ",1") << l;
  }
  expect_no_temporaries(out);
}

// --bn-recalibrate with --stream-memory: the statistics are re-estimated on clean training
// patches read from a stream of their own, --recalibrate-batches batches of --batch-size.
TEST_F(AppsSmoke, Task3StreamedRecalibratesFromItsOwnTrainingStream) {
  const fs::path out = dir_ / "task3-stream-recal";
  const Result r = run_app("task3",
                           "--threads 1 --stream-memory 16 --steps-per-epoch 2 --epochs 1 --runs 1 --batch-size 20 "
                           "--bn-recalibrate --recalibrate-batches 3 --validation-freq 1 --train-eval-images 50 --data-dir '" +
                               kData + "/pcam' --out '" + out.string() + "'",
                           dir_ / "task3-stream-recal.log");
  ASSERT_EQ(r.status, 0) << r.output;
  // Once for the validation after epoch 1, once for the final figures.
  size_t times = 0;
  for (size_t at = r.output.find("batch norm recalibrated: 6 layers, 60 clean training images");
       at != std::string::npos; at = r.output.find("batch norm recalibrated: 6 layers, 60", at + 1))
    ++times;
  EXPECT_EQ(times, 2u) << r.output;
  const json res = read_json(out / "results.json");
  EXPECT_TRUE(res["settings"]["bn_recalibrate"].get<bool>());
  EXPECT_EQ(res["runs"][0]["training"]["steps"].get<int64_t>(), 2);
  expect_figures(res["runs"][0]["valid"], "valid", true);
  EXPECT_EQ(read_lines(out / "predictions.csv").size(), 301u);
  expect_no_temporaries(out);
}

// --evaluate-checkpoint on a lab-setting run's last checkpoint reproduces that run's validation
// figures with the moving statistics, and, after recalibration, the figures a run of the same
// seed with --bn-recalibrate reported: the option changes what is evaluated, never the weights.
TEST_F(AppsSmoke, Task3EvaluateCheckpointShowsWhatRecalibrationWouldReport) {
  const std::string common = "--quick --threads 1 --train-images 280 --valid-images 100 --seed 3 --data-dir '" +
                             kData + "/pcam'";
  const fs::path lab = dir_ / "task3-lab", recal = dir_ / "task3-recal", ckpt = dir_ / "task3-ckpt";
  const Result a = run_app("task3", common + " --no-bn-recalibrate --out '" + lab.string() +
                                        "' --checkpoint-dir '" + ckpt.string() + "'",
                           dir_ / "task3-lab.log");
  ASSERT_EQ(a.status, 0) << a.output;
  const Result b = run_app("task3", common + " --bn-recalibrate --out '" + recal.string() + "'", dir_ / "task3-recal.log");
  ASSERT_EQ(b.status, 0) << b.output;
  const fs::path eval_dir = dir_ / "task3-eval";
  const Result e = run_app("task3", common + " --out '" + eval_dir.string() + "' --evaluate-checkpoint '" +
                                        (ckpt / "run1.ckpt.h5").string() + "'",
                           dir_ / "task3-eval.log");
  ASSERT_EQ(e.status, 0) << e.output;
  const json lab_valid = read_json(lab / "results.json")["runs"][0]["valid"];
  const json recal_valid = read_json(recal / "results.json")["runs"][0]["valid"];
  const json ev = read_json(eval_dir / "evaluation-epoch2.json");
  EXPECT_EQ(ev["epochs_done"].get<int64_t>(), 2);
  const json& moving = ev["valid"]["moving_statistics"];
  const json& recalibrated = ev["valid"]["recalibrated"];
  expect_figures(moving, "moving_statistics", true);
  expect_figures(recalibrated, "recalibrated", true);
  EXPECT_EQ(moving["accuracy"].get<double>(), lab_valid["accuracy"].get<double>());
  EXPECT_EQ(moving["auc"].get<double>(), lab_valid["auc"].get<double>());
  EXPECT_NEAR(moving["loss"].get<double>(), lab_valid["cross_entropy"].get<double>(), 1e-9);
  EXPECT_EQ(recalibrated["accuracy"].get<double>(), recal_valid["accuracy"].get<double>());
  EXPECT_EQ(recalibrated["auc"].get<double>(), recal_valid["auc"].get<double>());
  EXPECT_NEAR(recalibrated["loss"].get<double>(), recal_valid["cross_entropy"].get<double>(), 1e-9);
  // A checkpoint that is not one (the run's model file) is refused by name.
  const Result bad = run_app("task3", common + " --out '" + eval_dir.string() + "' --evaluate-checkpoint '" +
                                          (lab / "run1" / "model.h5").string() + "'",
                             dir_ / "task3-bad.log");
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("model.h5"), std::string::npos) << bad.output;
}

TEST_F(AppsSmoke, HelpExitsZeroAndExplainsSeeds) {
  for (const char* app : {"task1", "task2", "task3"}) {
    const Result r = run_app(app, "--help", dir_ / "help.log");
    EXPECT_EQ(r.status, 0) << app;
    EXPECT_NE(r.output.find("--quick"), std::string::npos) << app;
    EXPECT_NE(r.output.find("--seed S --runs 1"), std::string::npos) << app;
  }
}

TEST_F(AppsSmoke, BadInputGivesAClearErrorNotACrash) {
  const fs::path out = dir_ / "bad";
  struct Case {
    const char* app;
    std::string args;
    int status;
    std::string mentions;
  };
  const fs::path empty = dir_ / "empty_data";
  fs::create_directories(empty);
  const std::vector<Case> cases = {
      {"task1", "--data-dir /no/such/dir --out '" + out.string() + "'", 2, "/no/such/dir"},
      {"task2", "--data-dir /no/such/dir --out '" + out.string() + "'", 2, "--data-dir"},
      {"task3", "--data-dir /no/such/dir --out '" + out.string() + "'", 2, "/no/such/dir"},
      {"task1", "--epochs 0", 2, "--epochs"},
      {"task2", "--runs -1", 2, "--runs"},
      {"task3", "--batch-size abc", 2, "--batch-size"},
      {"task1", "--no-such-flag", 2, "--no-such-flag"},
      {"task3", "--lr-schedule linear", 2, "--lr-schedule"},
      {"task3", "--stream-memory 64 --quick", 2, "--quick"},
      {"task3", "--stream-memory 64 --inspect", 2, "--steps-per-epoch"},
      {"task3", "--stream-memory 1 --data-dir '" + kData + "/pcam' --out '" + out.string() + "'", 1, "needs at least"},
      {"task3", "--image-size 64 --data-dir '" + kData + "/pcam' --out '" + out.string() + "'", 1, "train.h5"},
      {"task1", "--data-dir '" + empty.string() + "' --out '" + out.string() + "'", 1, "train-images-idx3-ubyte"},
      {"task3", "--data-dir '" + empty.string() + "' --out '" + out.string() + "'", 1, "train.h5"},
  };
  for (const Case& c : cases) {
    const Result r = run_app(c.app, c.args, dir_ / "bad.log");
    EXPECT_EQ(r.status, c.status) << c.app << " " << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.mentions), std::string::npos) << c.app << " " << c.args << "\n" << r.output;
  }
}

// `kiln convert` rewrites a real Keras file as a Keras legacy file, as a kiln file and as an
// ONNX file (chosen by the .onnx extension); all four give the same predictions on the
// committed MNIST slice (same count of correct images, same loss to float rounding), and a
// bad request leaves no output behind.
TEST_F(AppsSmoke, KilnConvertKeepsEveryPrediction) {
  const std::string keras = std::string(KILN_FIXTURE_DIR) + "/keras/keras3.1-convnet.h5";
  const fs::path as_keras = dir_ / "converted_keras.h5", as_kiln = dir_ / "converted_kiln.h5",
                 as_onnx = dir_ / "converted.onnx";
  ASSERT_EQ(run_app("kiln", "convert '" + keras + "' '" + as_keras.string() + "'", dir_ / "c1.log").status, 0);
  ASSERT_EQ(run_app("kiln", "convert '" + as_keras.string() + "' '" + as_kiln.string() + "' --to kiln",
                    dir_ / "c2.log").status, 0);
  ASSERT_EQ(run_app("kiln", "convert '" + as_kiln.string() + "' '" + as_onnx.string() + "'", dir_ / "c5.log").status, 0);
  std::vector<json> results;
  for (const std::string& model : {keras, as_keras.string(), as_kiln.string(), as_onnx.string()}) {
    const fs::path out = dir_ / ("eval" + std::to_string(results.size()) + ".json");
    const Result r = run_app("kiln", "evaluate '" + model + "' --data-dir '" + kData + "/mnist' --json '" +
                                         out.string() + "'", dir_ / "eval.log");
    ASSERT_EQ(r.status, 0) << r.output;
    results.push_back(read_json(out));
  }
  EXPECT_GT(results[0]["n"].get<int>(), 0);
  EXPECT_GT(results[0]["accuracy"].get<double>(), 0.9);  // a trained model, not chance
  for (size_t i = 1; i < results.size(); ++i) {
    EXPECT_EQ(results[i]["correct"], results[0]["correct"]);
    EXPECT_NEAR(results[i]["loss"].get<double>(), results[0]["loss"].get<double>(), 1e-5);
  }
  EXPECT_EQ(results[2]["format"], "kiln");
  EXPECT_EQ(results[3]["format"], "onnx");

  const fs::path never = dir_ / "never.h5";
  const Result bad_format = run_app("kiln", "convert '" + keras + "' '" + never.string() + "' --to caffe", dir_ / "c3.log");
  EXPECT_EQ(bad_format.status, 2);
  EXPECT_NE(bad_format.output.find("--to"), std::string::npos) << bad_format.output;
  const Result missing = run_app("kiln", "convert /no/such/model.h5 '" + never.string() + "'", dir_ / "c4.log");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("/no/such/model.h5"), std::string::npos) << missing.output;
  EXPECT_FALSE(fs::exists(never));
  expect_no_temporaries(dir_);
}

// Kill and resume: task2 (batch norm, dropout, augmentation, two runs) is killed with SIGKILL
// at random moments and resumed each time with --resume. Every checkpoint on disk after each
// kill must read back, and the final results must equal an uninterrupted run's exactly.
TEST_F(AppsSmoke, KilledRunResumesToTheSameResult) {
  const std::string common = "--quick --threads 1 --runs 2 --epochs 4 --validation-freq 2 --valid-images 200 "
                             "--test-images 300 --checkpoint-every 1 --data-dir '" + kData + "/mnist'";
  const fs::path ref = dir_ / "kill_ref", out = dir_ / "kill_out", ckpt = dir_ / "kill_ckpt";
  const auto start = std::chrono::steady_clock::now();
  const Result whole = run_app("task2", common + " --out '" + ref.string() + "' --checkpoint-dir '" +
                                            (dir_ / "kill_ref_ckpt").string() + "'", dir_ / "kill_ref.log");
  ASSERT_EQ(whole.status, 0) << whole.output;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> moment(0.05 * seconds, 0.6 * seconds);
  int kills = 0, resumes = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const bool resume = fs::exists(ckpt / "args.json");
    const std::string args = resume ? "--resume '" + ckpt.string() + "'"
                                    : common + " --out '" + out.string() + "' --checkpoint-dir '" + ckpt.string() + "'";
    if (!resume) {
      fs::remove_all(out);
      fs::remove_all(ckpt);
    }
    resumes += resume;
    const pid_t pid = kiln::testing_apps::start_app("task2", args, dir_ / "kill.log");
    ASSERT_GE(pid, 0);
    std::this_thread::sleep_for(std::chrono::duration<double>(moment(rng)));
    kills += ::kill(pid, SIGKILL) == 0;
    kiln::testing_apps::wait_status(pid);
    if (!fs::exists(ckpt)) continue;
    for (const auto& e : fs::directory_iterator(ckpt)) {
      const std::string name = e.path().filename().string();
      if (name.size() > 8 && name.substr(name.size() - 8) == ".ckpt.h5") {
        try {
          kiln::read_checkpoint(e.path().string());
        } catch (const std::exception& ex) {
          ADD_FAILURE() << "after kill " << attempt + 1 << ": " << ex.what();
        }
      }
    }
  }
  ASSERT_TRUE(fs::exists(ckpt / "args.json")) << "no kill left a resumable run";
  const Result last = run_app("task2", "--resume '" + ckpt.string() + "'", dir_ / "kill_last.log");
  ASSERT_EQ(last.status, 0) << last.output;
  EXPECT_GE(kills, 1);
  std::cout << "killed " << kills << " times, resumed " << resumes + 1 << " times\n";

  const json a = read_json(ref / "results.json"), b = read_json(out / "results.json");
  ASSERT_EQ(a["runs"].size(), 2u);
  ASSERT_EQ(b["runs"].size(), 2u);
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_EQ(a["runs"][r]["train"], b["runs"][r]["train"]) << "run " << r + 1;
    EXPECT_EQ(a["runs"][r]["test"], b["runs"][r]["test"]) << "run " << r + 1;
    const std::string run_dir = "run" + std::to_string(r + 1);
    EXPECT_EQ(history_without_seconds(ref / run_dir / "history.csv"), history_without_seconds(out / run_dir / "history.csv"));
    const kiln::Checkpoint x = kiln::read_checkpoint((dir_ / "kill_ref_ckpt" / (run_dir + ".ckpt.h5")).string());
    const kiln::Checkpoint y = kiln::read_checkpoint((ckpt / (run_dir + ".ckpt.h5")).string());
    ASSERT_EQ(x.parameters.size(), y.parameters.size());
    for (size_t i = 0; i < x.parameters.size(); ++i) {
      const kiln::Tensor &p = x.parameters[i].second, &q = y.parameters[i].second;
      ASSERT_EQ(p.shape(), q.shape());
      EXPECT_EQ(std::memcmp(p.data(), q.data(), sizeof(float) * p.numel()), 0) << x.parameters[i].first;
    }
  }
  EXPECT_EQ(a["test_accuracy_mean"], b["test_accuracy_mean"]);
  // A fresh start must not overwrite a checkpointed run.
  const Result again = run_app("task2", common + " --out '" + out.string() + "' --checkpoint-dir '" + ckpt.string() + "'",
                               dir_ / "kill_again.log");
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;
}

}  // namespace
