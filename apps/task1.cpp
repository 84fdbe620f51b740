// `task1`: the lab's Task 1 end to end. Trains the 4,266-parameter CNN on MNIST with Adam
// (batch 128, 10 epochs), prints the report's Table 1 (train/test loss and accuracy), saves the
// weights, evaluates them again with an independent hand-written forward path
// (apps/reference_cnn.h) for Table 2, and repeats the lab's per-layer check on one image.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "apps/common/app_common.h"
#include "apps/common/stop_on_signal.h"
#include "apps/reference_cnn.h"
#include "core/autograd.h"
#include "core/ops/ops.h"
#include "core/runtime/random.h"
#include "data/formats/idx.h"
#include "layers/io/model_file.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/zoo/lab_models.h"
#include "layers/max_pool2d.h"
#include "optim/adam.h"
#include "optim/report/plot_history.h"

namespace {

using json = nlohmann::json;
using namespace kiln;
using app::fixed;
using app::percent;

constexpr const char* kProgram = "task1";
constexpr int64_t kQuickTrainImages = 10000;

// The report's numbers (seed/lab-report.md, Tables 1 and 2 and the per-layer check).
constexpr int64_t kReportParams = 4266;
constexpr double kReportTrainLoss = 0.0603, kReportTrainAcc = 0.9811;
constexpr double kReportTestLoss = 0.0683, kReportTestAcc = 0.9771;
constexpr double kReportLayerOwn = 1313.510246699676, kReportLayerKeras = 1313.5103;
constexpr double kReportLayerDiff = 3.693997859954834e-05;

json report_json() {
  return {{"params", kReportParams},
          {"train", {{"loss", kReportTrainLoss}, {"accuracy", kReportTrainAcc}}},
          {"test", {{"loss", kReportTestLoss}, {"accuracy", kReportTestAcc}}},
          {"reference", {{"train", {{"loss", kReportTrainLoss}, {"accuracy", kReportTrainAcc}}},
                         {"test", {{"loss", kReportTestLoss}, {"accuracy", kReportTestAcc}}}}},
          {"layer_check", {{"sum_own_cnn", kReportLayerOwn}, {"sum_keras", kReportLayerKeras},
                           {"abs_diff", kReportLayerDiff}}},
          {"other_students_test_accuracy", {0.977, 0.981}}};
}

struct LayerCheck {
  std::string layer;
  double sum_kiln = 0, sum_reference = 0, abs_diff = 0;
};

LayerCheck compare(const std::string& layer, const std::vector<float>& y1, const std::vector<float>& y2) {
  if (y1.size() != y2.size())
    throw std::runtime_error("per-layer check, " + layer + ": kiln gives " + std::to_string(y1.size()) +
                             " values, the reference " + std::to_string(y2.size()));
  LayerCheck c{layer};
  for (size_t i = 0; i < y1.size(); ++i) {
    c.sum_kiln += std::abs(static_cast<double>(y1[i]));
    c.sum_reference += std::abs(static_cast<double>(y2[i]));
    c.abs_diff += std::abs(static_cast<double>(y1[i]) - y2[i]);
  }
  return c;
}

// The lab's per-layer check: randomly initialised single layers applied to one image by kiln's
// layers and by the reference loops. Pool and flatten take the conv layer's 16-channel output
// (on the 1-channel image they would leave the channel order of flatten untested).
std::vector<LayerCheck> per_layer_check(const Tensor& image, uint64_t seed) {
  NoGradGuard no_grad;
  const int h = static_cast<int>(image.size(1)), w = static_cast<int>(image.size(2)),
            c = static_cast<int>(image.size(3));
  constexpr int kFilters = 16, kClasses = 10;
  const std::vector<float> x = image.to_vector();
  std::vector<LayerCheck> checks;

  Conv2D conv({.in_channels = c, .filters = kFilters, .seed = mix64(seed ^ 0xc011)});
  conv.bias().copy_(Tensor::normal({kFilters}, 0.0f, 1.0f, mix64(seed ^ 0xb1a5)));
  const Tensor conv_out = conv.forward(image);
  const std::vector<float> conv_ref =
      reference::conv2d_same(x, h, w, c, conv.kernel().to_vector(), 3, 3, kFilters,
                             conv.bias().to_vector(), reference::Act::Linear);
  checks.push_back(compare("conv 3x3, " + std::to_string(kFilters) + " filters, bias ~ N(0,1)",
                           conv_out.to_vector(), conv_ref));

  const std::vector<float> feature = conv_out.to_vector();
  MaxPool2D pool;
  checks.push_back(compare("max pool 2x2 (of the conv output)", pool.forward(conv_out).to_vector(),
                           reference::max_pool_2x2(feature, h, w, kFilters)));
  Flatten flat;
  checks.push_back(compare("flatten (of the conv output)", flat.forward(conv_out).to_vector(),
                           reference::flatten(feature)));

  const int in = h * w * c;
  Dense dense({.in_features = in, .units = kClasses, .activation = Activation::Softmax,
               .seed = mix64(seed ^ 0xde75e)});
  checks.push_back(compare("dense " + std::to_string(in) + " -> 10 + softmax",
                           dense.forward(flatten(image)).to_vector(),
                           reference::dense(x, dense.kernel().to_vector(), in, kClasses,
                                            dense.bias().to_vector(), reference::Act::Softmax)));
  return checks;
}

// Table 1 / Table 2 cells: params, then train and test loss and accuracy, as printed.
std::vector<std::string> printed(int64_t params, double train_loss, double train_acc,
                                 double test_loss, double test_acc) {
  return {app::grouped(params), fixed(train_loss, 4), percent(train_acc), fixed(test_loss, 4),
          percent(test_acc)};
}

const std::vector<std::string> kRowNames = {"Trainable params", "Train loss", "Train accuracy",
                                            "Test loss", "Test accuracy"};

int run(int raw_argc, char** raw_argv) {
  app::CommandLine command_line(kProgram, raw_argc, raw_argv);
  const int argc = command_line.argc();
  char** argv = command_line.argv();
  cli::Args args(kProgram,
                 "The lab's Task 1: trains the 4,266-parameter CNN (conv 4 -> pool -> conv 8 -> pool "
                 "-> dense 10) on MNIST (54,000 train / 6,000 validation / 10,000 test) with Adam, "
                 "batch 128, 10 epochs, and prints the report's Table 1. Saves the weights to "
                 "HDF5, runs them through an independent hand-written forward path (Table 2; the "
                 "two tables must agree to every printed digit), and repeats the lab's per-layer "
                 "check on one image.\n\nWrites into --out: results.json (every printed figure, "
                 "the settings, seeds and wall time) and per run run<r>/history.csv, "
                 "run<r>/curves.png (loss and accuracy, train vs validation) and "
                 "run<r>/model.h5. Run r uses seed --seed + r - 1; `--seed S --runs 1` repeats "
                 "the run that had seed S. Figures at the top of results.json are run 1's.");
  const app::CommonDefaults defaults{.data_dir = "data/mnist", .out_dir = "out/task1", .epochs = 10,
                                     .batch_size = 128, .runs = 1, .quick_epochs = 3, .quick_runs = 1};
  app::add_common_flags(args, defaults);
  args.option("train-images", "N",
              "training images taken from the 54,000 (0 = all; with --quick " +
                  std::to_string(kQuickTrainImages) + ")");
  args.parse(argc, argv);
  const app::CommonFlags f = app::read_common_flags(args, defaults);
  const int64_t train_limit = app::int_flag(args, "train-images", f.quick ? kQuickTrainImages : 0, 0);
  const int threads = app::apply_threads(f.threads);
  const app::Stopwatch clock;

  app::require_data_dir("data-dir", f.data_dir,
                        "the MNIST IDX files; `kiln data mnist --dir " + f.data_dir + "` fetches them");
  const ImageSet train_raw = load_mnist(f.data_dir, "train");
  const ImageSet test_raw = load_mnist(f.data_dir, "t10k");
  app::make_output_dir(f.out_dir);

  json runs = json::array();
  json top;
  std::vector<LayerCheck> layer_checks;
  for (int64_t r = 0; r < f.runs; ++r) {
    const uint64_t seed = f.seed + static_cast<uint64_t>(r);
    const app::Stopwatch run_clock;
    const int64_t n_rest = train_raw.n - static_cast<int64_t>(std::floor(0.1 * static_cast<double>(train_raw.n)));
    const LabSplit split = prepare_mnist_lab(train_raw, test_raw, train_limit > 0 ? std::min(train_limit, n_rest) : 0, seed);
    std::printf("\n== task1 run %lld/%lld, seed %llu: %s train / %s validation / %s test images, "
                "%d threads\n",
                static_cast<long long>(r + 1), static_cast<long long>(f.runs),
                static_cast<unsigned long long>(seed), app::grouped(split.train.size()).c_str(),
                app::grouped(split.valid.size()).c_str(), app::grouped(split.test.size()).c_str(), threads);

    manual_seed(seed);
    auto model = task1_model(train_raw.h, train_raw.w, train_raw.c, split.train.num_classes);
    if (r == 0) std::cout << summary(*model, {train_raw.h, train_raw.w, train_raw.c}, "task1");
    Adam adam(model->named_parameters());
    if (f.resume) app::check_checkpoint(kProgram, f.checkpoint_path(r + 1));
    const FitOptions options{.epochs = f.epochs, .batch_size = f.batch_size,
                             .validation = &split.valid, .validation_freq = 1, .seed = seed,
                             .loss = {}, .on_epoch_begin = {}, .on_batch_end = {}, .on_epoch_end = {}, .validate = {},
                             .checkpoint_path = f.checkpoint_path(r + 1),
                             .checkpoint_every = f.checkpoint_every, .checkpoint_note = "",
                             .resume = f.resume, .stop_requested = {},
                             .communicator = f.communicator, .sync_batch_norm = f.sync_batch_norm,
                             .tensorboard_dir = f.tensorboard_path(r + 1)};
    const History history = app::fit_stopping_on_signal(kProgram, *model, adam, split.train, options, f, r + 1);
    const Evaluation train_eval = evaluate(*model, split.train);
    const Evaluation test_eval = evaluate(*model, split.test);

    const std::string run_dir = "run" + std::to_string(r + 1);
    app::make_output_dir(f.out_dir + "/" + run_dir);
    history.write_csv(f.out_dir + "/" + run_dir + "/history.csv");
    write_history_png(f.out_dir + "/" + run_dir + "/curves.png", history,
                      {.title = "task1 run " + std::to_string(r + 1) + ", seed " + std::to_string(seed)});
    const std::string weights = f.out_dir + "/" + run_dir + "/model.h5";
    save_model(weights, *model, {train_raw.h, train_raw.w, train_raw.c}, "task1");
    if (f.inspect)
      app::inspect_run(*model, split.test, f.out_dir + "/" + run_dir + "/inspect", "task1 run " + std::to_string(r + 1));

    // Table 2: the saved file, read back by the reference path's own reader.
    const reference::Task1Cnn ref = reference::Task1Cnn::load(weights, static_cast<int>(train_raw.h),
                                                              static_cast<int>(train_raw.w));
    const reference::Figures ref_train =
        reference::evaluate(ref, split.train.x.data(), split.train.size(), split.train.labels);
    std::vector<float> ref_probs;
    const reference::Figures ref_test =
        reference::evaluate(ref, split.test.x.data(), split.test.size(), split.test.labels, &ref_probs);
    const Tensor kiln_probs = predict(*model, split.test.x);
    double max_abs_diff = 0;
    for (int64_t i = 0; i < kiln_probs.numel(); ++i)
      max_abs_diff = std::max(max_abs_diff, std::abs(static_cast<double>(kiln_probs.data()[i]) - ref_probs[i]));

    const int64_t params = model->count_trainable();
    const auto t1 = printed(params, train_eval.loss, train_eval.accuracy, test_eval.loss, test_eval.accuracy);
    const auto t2 = printed(params, ref_train.loss, ref_train.accuracy, ref_test.loss, ref_test.accuracy);
    const auto rep = printed(kReportParams, kReportTrainLoss, kReportTrainAcc, kReportTestLoss, kReportTestAcc);
    app::TextTable table1({"Table 1: kiln", "kiln", "report (Keras)"});
    app::TextTable table2({"Table 2: reference CNN", "reference", "kiln (Table 1)", "report (own CNN)"});
    for (size_t i = 0; i < kRowNames.size(); ++i) {
      table1.row({kRowNames[i], t1[i], rep[i]});
      table2.row({kRowNames[i], t2[i], t1[i], rep[i]});
    }
    const bool agree = t1 == t2;
    std::printf("\n%s\n%s\n", table1.str().c_str(), table2.str().c_str());
    std::printf("Tables 1 and 2 agree to every printed digit: %s\n", agree ? "yes" : "NO");
    std::printf("max |p_kiln - p_reference| over %s test images x %lld classes: %.3g\n",
                app::grouped(split.test.size()).c_str(), static_cast<long long>(kiln_probs.size(1)),
                max_abs_diff);
    std::printf("test accuracy %s: %s the 97.5 %% target\n", percent(test_eval.accuracy).c_str(),
                test_eval.accuracy >= 0.975 ? "meets" : "misses");

    const json run_json = {
        {"seed", seed},
        {"params", params},
        {"train", app::figures_json(train_eval, false)},
        {"test", app::figures_json(test_eval, false)},
        {"reference", {{"train", {{"loss", ref_train.loss}, {"accuracy", ref_train.accuracy}}},
                       {"test", {{"loss", ref_test.loss}, {"accuracy", ref_test.accuracy}}}}},
        {"max_abs_diff", max_abs_diff},
        {"tables_agree", agree},
        {"images", {{"train", split.train.size()}, {"valid", split.valid.size()}, {"test", split.test.size()}}},
        {"history", run_dir + "/history.csv"},
        {"plot", run_dir + "/curves.png"},
        {"model", run_dir + "/model.h5"},
        {"seconds", run_clock.seconds()}};
    runs.push_back(run_json);
    if (r == 0) {
      top = run_json;
      // The per-layer check needs no training: once, on the first test image.
      layer_checks = per_layer_check(split.test.x.slice(0, 1), seed);
    }
  }

  app::TextTable checks({"Per-layer check (one test image)", "sum|y| kiln", "sum|y| reference", "sum|y1-y2|"});
  json checks_json = json::array();
  for (const LayerCheck& c : layer_checks) {
    char diff[32];
    std::snprintf(diff, sizeof diff, "%.3g", c.abs_diff);
    checks.row({c.layer, fixed(c.sum_kiln, 6), fixed(c.sum_reference, 6), diff});
    checks_json.push_back({{"layer", c.layer}, {"sum_kiln", c.sum_kiln},
                           {"sum_reference", c.sum_reference}, {"abs_diff", c.abs_diff}});
  }
  std::printf("\n%s", checks.str().c_str());
  std::printf("report: own CNN sum|y| %.12g vs Keras %.4f, |diff| %.3g (Keras printed 4 decimals)\n",
              kReportLayerOwn, kReportLayerKeras, kReportLayerDiff);

  json results = {{"app", kProgram}};
  results.update(app::environment_json());
  for (const char* key : {"params", "train", "test", "reference", "max_abs_diff", "tables_agree", "seed"})
    results[key] = top[key];
  results["layer_check"] = checks_json;
  results["runs"] = runs;
  results["settings"] = {{"data_dir", f.data_dir}, {"out", f.out_dir}, {"seed", f.seed},
                         {"threads", f.threads}, {"epochs", f.epochs}, {"batch_size", f.batch_size},
                         {"runs", f.runs}, {"quick", f.quick}, {"train_images", train_limit},
                         {"optimizer", "Adam lr 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-7"},
                         {"validation_freq", 1}};
  results["report"] = report_json();
  results["wall_seconds"] = clock.seconds();
  app::write_json_file(f.out_dir + "/results.json", results);
  std::printf("\nwrote %s/results.json and run<r>/{history.csv,curves.png,model.h5}; %.1f s\n",
              f.out_dir.c_str(), clock.seconds());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return kiln::app::run_main(kProgram, [&] { return run(argc, argv); });
}
