// `task3`: the lab's Task 3 end to end. Trains the Task 3 CNN on PatchCamelyon (32x32 centre
// crops) with the lab's augmentation and AdamW, batch 70, 16 epochs, validation every 4 with
// accuracy and ROC AUC; prints the report's Table 4 and writes test-set predictions as CSV.
// Two options beyond the lab, off by default: batch-norm recalibration before each evaluation
// and a cosine learning-rate decay. For the original release at full size: --image-size 96
// trains on uncropped patches, and --stream-memory reads every split from its file while
// training (data/stream/streaming_dataset.h) instead of holding it in memory.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <numbers>
#include <string>
#include <vector>

#include "apps/common/app_common.h"
#include "apps/common/stop_on_signal.h"
#include "core/ops/ops.h"
#include "core/runtime/random.h"
#include "core/runtime/memory.h"
#include "data/lab/lab_augmentation.h"
#include "data/formats/pcam.h"
#include "data/stream/streaming_dataset.h"
#include "layers/io/model_file.h"
#include "layers/zoo/lab_models.h"
#include "optim/adam.h"
#include "optim/train/checkpoint.h"
#include "optim/report/plot_history.h"

namespace {

using json = nlohmann::json;
using namespace kiln;
using app::fixed;
using app::percent;

constexpr const char* kProgram = "task3";
constexpr int64_t kCrop = 32;  // the course files' size; the original 96x96 patches are cropped to it
// Inference batches hold about 256 patches of 32x32 (fewer for larger patches, so a batch's
// activations stay near the size they have at 32x32).
int64_t eval_batch(int64_t h, int64_t w) { return std::max<int64_t>(8, 256 * 32 * 32 / (h * w)); }

// The report's Table 4 (four runs).
const std::vector<double> kReportTrainLoss = {0.3595, 0.3178, 0.3280, 0.3710};
const std::vector<double> kReportTrainAcc = {0.862, 0.9014, 0.8865, 0.8552};
const std::vector<double> kReportTrainAuc = {0.94, 0.96, 0.92, 0.94};
const std::vector<double> kReportValidLoss = {0.4671, 0.5166, 0.4712, 0.4801};
const std::vector<double> kReportValidAcc = {0.8026, 0.788, 0.8011, 0.8084};
const std::vector<double> kReportValidAuc = {0.89, 0.87, 0.89, 0.89};

json report_json() {
  json runs = json::array();
  for (size_t i = 0; i < kReportValidAcc.size(); ++i)
    runs.push_back({{"train", {{"loss", kReportTrainLoss[i]}, {"accuracy", kReportTrainAcc[i]}, {"auc", kReportTrainAuc[i]}}},
                    {"valid", {{"loss", kReportValidLoss[i]}, {"accuracy", kReportValidAcc[i]}, {"auc", kReportValidAuc[i]}}}});
  return {{"runs", runs}};
}

// rows [0, limit) of a split (limit 0: all), centre-cropped to crop x crop, read in blocks so the
// original release's 7 GB training file never has to fit in memory beyond the rows kept.
ImageSet load_split(const std::string& dir, const std::string& split, int64_t limit, int64_t crop) {
  const PcamReader reader = [&] {
    const cli::Deadline deadline(kProgram, dir + " (" + split + " split)", 120);
    return PcamReader(dir, split, crop);
  }();
  ImageSet set;
  set.n = limit > 0 ? std::min(limit, reader.count()) : reader.count();
  set.h = reader.height();
  set.w = reader.width();
  set.c = reader.channels();
  set.pixels.resize(static_cast<size_t>(set.n * reader.row_size()));
  if (reader.has_labels()) set.labels.resize(static_cast<size_t>(set.n));
  constexpr int64_t kBlock = 8192;
  for (int64_t begin = 0; begin < set.n; begin += kBlock) {
    const int64_t end = std::min(set.n, begin + kBlock);
    const cli::Deadline deadline(kProgram, reader.files().x_path, 600);
    reader.read(begin, end, set.pixels.data() + begin * reader.row_size(),
                reader.has_labels() ? set.labels.data() + begin : nullptr);
  }
  std::printf("  %-5s %s images %lldx%lldx%lld from %s (%s layout)\n", split.c_str(),
              app::grouped(set.n).c_str(), static_cast<long long>(set.h), static_cast<long long>(set.w),
              static_cast<long long>(set.c), reader.files().x_path.c_str(),
              pcam_layout_name(reader.files().layout));
  return set;
}

// The three splits: in memory (the lab's way), or streamed from their files (--stream-memory),
// each with its own bounded buffers, so memory does not grow with the files.
struct Splits {
  ImageSet shape;  // n = 0: only h, w, c
  LabSplit memory;
  std::unique_ptr<StreamingDataset> train, valid, test;
  int64_t stream_bytes = 0, train_eval_rows = 0, eval_batch_size = 256;
  std::string data_dir;
  int64_t crop = kCrop;

  bool streamed() const { return train != nullptr; }
  int64_t train_rows() const { return streamed() ? train->rows() : memory.train.size(); }
  int64_t valid_rows() const { return streamed() ? valid->rows() : memory.valid.size(); }
  int64_t test_rows() const { return streamed() ? test->rows() : memory.test.x.size(0); }
  int64_t num_classes() const { return streamed() ? train->num_classes() : memory.train.num_classes; }
  bool test_labelled() const { return streamed() ? test->num_classes() > 0 : !memory.test.labels.empty(); }

  Evaluation evaluate_train(Module& model) const {
    const int64_t rows = train_eval_rows > 0 ? std::min(train_eval_rows, train_rows()) : train_rows();
    if (!streamed()) return evaluate(model, app::first_rows(memory.train, rows), eval_batch_size, true);
    StreamingDataset head(PcamReader(data_dir, "train", crop),
                          {.batch_size = eval_batch_size, .shuffle = false, .memory_bytes = stream_bytes,
                           .num_classes = num_classes(), .max_rows = rows});
    return evaluate(model, head, true);
  }
  Evaluation evaluate_valid(Module& model) const {
    return streamed() ? evaluate(model, *valid, true) : evaluate(model, memory.valid, eval_batch_size, true);
  }
  Evaluation evaluate_test(Module& model) const {
    return streamed() ? evaluate(model, *test, true) : evaluate(model, memory.test, eval_batch_size, true);
  }
  Tensor predict_test(Module& model) const {
    return streamed() ? predict(model, *test) : predict(model, memory.test.x, eval_batch_size);
  }
};

// "id,class" and one row per test image: its row in the test file and the argmax class.
std::string predictions_csv(const Tensor& probs) {
  std::string csv = "id,class\n";
  const int64_t k = probs.size(1);
  for (int64_t i = 0; i < probs.size(0); ++i) {
    const float* p = probs.data() + i * k;
    const int64_t cls = std::max_element(p, p + k) - p;
    csv += std::to_string(i) + "," + std::to_string(cls) + "\n";
  }
  return csv;
}

std::string figures_text(const Evaluation& e) {
  return "loss " + fixed(e.loss, 4) + "  accuracy " + fixed(e.accuracy, 4) + "  auc " + fixed(e.auc, 4);
}

// --evaluate-checkpoint: the model as a checkpoint left it, evaluated on the validation set
// twice: with the moving batch-norm statistics training kept (what the lab's setting reports)
// and after re-estimating them on clean training patches (what --bn-recalibrate reports).
// Recalibration never changes the weights' path (batch norm trains on batch statistics and
// the recalibration draws from its own stream), so evaluating a lab-setting run's checkpoints
// this way shows exactly what the option would have printed in that run, given the same
// --seed. Writes <out>/evaluation-epoch<N>.json.
int evaluate_checkpoint(const std::string& path, const app::CommonFlags& f, const ImageSet& shape,
                        const LabSplit& data, int64_t recal_batches) {
  const Checkpoint checkpoint = [&] {
    const cli::Deadline deadline(kProgram, path, 120);
    return read_checkpoint(path);
  }();
  auto model = task3_model(shape.h, shape.w, shape.c, data.train.num_classes);
  AdamW adamw(model->named_parameters());
  Generator augmentation_stream;  // fit's, stored in the checkpoint; unused here
  restore_checkpoint(checkpoint, path, *model, adamw, {{"fit.augmentation", &augmentation_stream}});
  std::printf("task3: %s after %lld epoch(s); validation on %s patches\n", path.c_str(),
              static_cast<long long>(checkpoint.epochs_done), app::grouped(data.valid.size()).c_str());
  const Evaluation lab = evaluate(*model, data.valid, 256, true);
  std::printf("  moving statistics (lab):  %s\n", figures_text(lab).c_str());
  app::RecalibratedValidation recal(*model, data.train, data.valid,
                                    {.batches = recal_batches, .batch_size = f.batch_size, .seed = f.seed, .auc = true});
  const Evaluation recalibrated = recal.validate(checkpoint.epochs_done);
  std::printf("  recalibrated statistics:  %s\n", figures_text(recalibrated).c_str());
  app::make_output_dir(f.out_dir);
  const std::string out = f.out_dir + "/evaluation-epoch" + std::to_string(checkpoint.epochs_done) + ".json";
  app::write_json_file(out, {{"app", kProgram},
                             {"checkpoint", path},
                             {"epochs_done", checkpoint.epochs_done},
                             {"seed", f.seed},
                             {"recalibrate_batches", recal_batches},
                             {"batch_size", f.batch_size},
                             {"valid", {{"moving_statistics", app::figures_json(lab, true)},
                                        {"recalibrated", app::figures_json(recalibrated, true)}}}});
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int run(int raw_argc, char** raw_argv) {
  app::CommandLine command_line(kProgram, raw_argc, raw_argv);
  const int argc = command_line.argc();
  char** argv = command_line.argv();
  cli::Args args(kProgram,
                 "The lab's Task 3: trains the Task 3 CNN (conv_block(2,128) -> conv_block(2,128) "
                 "-> conv_block(2,256) -> dropout -> dense 256 -> dropout -> dense 256 -> dense 2) "
                 "on PatchCamelyon with rotation/translation/brightness/flip augmentation, AdamW, "
                 "batch 70, 16 epochs, validation every 4 epochs with accuracy and ROC AUC, and "
                 "prints the report's Table 4 (train and validation figures per run, in inference "
                 "mode). --data-dir holds the course files (train.h5, valid.h5, test_x.h5; 32x32) "
                 "or the original release (camelyonpatch_level_2_split_*_{x,y}.h5; 96x96, "
                 "centre-cropped to 32x32 as the course files were, or whole with --image-size 96).\n\n"
                 "Run r (1-based) uses seed --seed + r - 1; `--seed S --runs 1` repeats the run "
                 "that had seed S (with the same --threads). A full run takes about an hour on 2 "
                 "cores.\n\nWrites into --out: results.json, predictions.csv (id,class for every "
                 "test image, from the run with the best validation accuracy) and per run "
                 "run<r>/history.csv, run<r>/curves.png, run<r>/predictions.csv, run<r>/model.h5.");
  const app::CommonDefaults defaults{.data_dir = "data/pcam", .out_dir = "out/task3", .epochs = 16,
                                     .batch_size = 70, .runs = 4, .quick_epochs = 2, .quick_runs = 1};
  app::add_common_flags(args, defaults);
  args.option("train-images", "N", "training patches used, from the start of the file (0 = all; with --quick 1000)");
  args.option("valid-images", "N", "validation patches used (0 = all; with --quick 300)");
  args.option("validation-freq", "N", "validate every N epochs (default 4; with --quick 1)");
  args.flag("bn-recalibrate",
            "beyond the lab: before each evaluation, re-estimate the batch-norm moving statistics "
            "on clean (unaugmented) training patches with the current weights (on with --quick: "
            "a few dozen steps leave the moving averages, momentum 0.99, near their initial values)");
  args.flag("no-bn-recalibrate", "keep the lab's moving statistics, also with --quick");
  args.option("recalibrate-batches", "N", "batches of --batch-size patches for --bn-recalibrate", "50");
  args.option("lr-schedule", "NAME",
              "beyond the lab: 'constant' (the lab's) or 'cosine' (learning rate decays from 1e-3 "
              "along half a cosine over the epochs, set at the start of each epoch)",
              "constant");
  args.option("image-size", "N",
              "side of the centre crop the network trains on: 32 (the course files' size, the lab's) "
              "or up to the stored size (96 trains the original release's patches whole)",
              "32");
  args.option("stream-memory", "MB",
              "read every split from its HDF5 file while training instead of loading it, with at "
              "most MB of buffers per split (0: load into memory, the lab's way); memory then stays "
              "bounded whatever the files' size (--bn-recalibrate streams the training file a "
              "second time, with as much again). Not with --quick, --train-images, --valid-images, "
              "--inspect or --evaluate-checkpoint",
              "0");
  args.option("steps-per-epoch", "N", "train on the first N batches of each epoch's order (0 = a whole pass)", "0");
  args.option("train-eval-images", "N",
              "the final inference-mode training figures cover the first N training patches (0 = all)", "0");
  args.option("evaluate-checkpoint", "FILE",
              "instead of training: evaluate the model a checkpoint of this app holds on the "
              "validation set with its moving batch-norm statistics and after recalibrating them "
              "(--recalibrate-batches batches drawn with --seed; pass the run's seed to repeat "
              "what --bn-recalibrate would print); writes <out>/evaluation-epoch<N>.json");
  args.parse(argc, argv);
  const app::CommonFlags f = app::read_common_flags(args, defaults);
  const int64_t train_limit = app::int_flag(args, "train-images", f.quick ? 1000 : 0, 0);
  const int64_t valid_limit = app::int_flag(args, "valid-images", f.quick ? 300 : 0, 0);
  const int64_t valid_freq = app::int_flag(args, "validation-freq", f.quick ? 1 : 4, 1);
  const int64_t image_size = app::int_flag(args, "image-size", kCrop, 1);
  const int64_t stream_mb = app::int_flag(args, "stream-memory", 0, 0);
  const int64_t steps_per_epoch = app::int_flag(args, "steps-per-epoch", 0, 0);
  const int64_t train_eval_images = app::int_flag(args, "train-eval-images", 0, 0);
  const bool streaming = stream_mb > 0;
  if (streaming)
    for (const char* flag : {"quick", "train-images", "valid-images", "inspect", "evaluate-checkpoint"})
      if (args.has(flag))
        throw app::UsageError(std::string("--stream-memory does not take --") + flag +
                              " (a streamed run reads whole splits; bound it with --steps-per-epoch)");
  const bool recalibrate = (args.has("bn-recalibrate") || f.quick) && !args.has("no-bn-recalibrate");
  const int64_t recal_batches = app::int_flag(args, "recalibrate-batches", 50, 1);
  const std::string schedule = args.get("lr-schedule");
  if (schedule != "constant" && schedule != "cosine")
    throw app::UsageError("--lr-schedule '" + schedule + "' is not one of: constant, cosine");
  const int threads = app::apply_threads(f.threads);
  const app::Stopwatch clock;

  app::require_data_dir("data-dir", f.data_dir,
                        "PatchCamelyon: train.h5, valid.h5, test_x.h5 or the original "
                        "camelyonpatch_level_2_split_*_{x,y}.h5 files");
  Splits data;
  data.data_dir = f.data_dir;
  data.crop = image_size;
  data.train_eval_rows = train_eval_images;
  if (streaming) {
    data.stream_bytes = stream_mb << 20;
    std::printf("task3: streaming PatchCamelyon from %s, %lld MB of buffers per split\n", f.data_dir.c_str(),
                static_cast<long long>(stream_mb));
    auto open = [&](const std::string& split, bool shuffle, int64_t batch, int64_t k) {
      const cli::Deadline deadline(kProgram, f.data_dir + " (" + split + " split)", 120);
      auto s = std::make_unique<StreamingDataset>(
          PcamReader(find_pcam_files(f.data_dir, split), image_size, /*labels_required=*/split != "test"),
          StreamOptions{.batch_size = batch, .seed = f.seed, .shuffle = shuffle, .memory_bytes = data.stream_bytes,
                        .num_classes = k});
      std::printf("  %-5s %s images %lldx%lldx%lld from %s (streamed: windows of %s rows)\n", split.c_str(),
                  app::grouped(s->rows()).c_str(), static_cast<long long>(s->example_shape()[0]),
                  static_cast<long long>(s->example_shape()[1]), static_cast<long long>(s->example_shape()[2]),
                  s->path().c_str(), app::grouped(s->window_rows()).c_str());
      return s;
    };
    data.train = open("train", true, f.batch_size, 0);
    data.eval_batch_size = eval_batch(data.train->example_shape()[0], data.train->example_shape()[1]);
    data.valid = open("valid", false, data.eval_batch_size, data.train->num_classes());
    data.test = open("test", false, data.eval_batch_size, data.train->num_classes());
    const Shape shape = data.train->example_shape();
    data.shape.h = shape[0];
    data.shape.w = shape[1];
    data.shape.c = shape[2];
  } else {
    std::printf("task3: loading PatchCamelyon from %s\n", f.data_dir.c_str());
    const ImageSet train_raw = load_split(f.data_dir, "train", train_limit, image_size);
    const ImageSet valid_raw = load_split(f.data_dir, "valid", valid_limit, image_size);
    const ImageSet test_raw = load_split(f.data_dir, "test", 0, image_size);
    data.shape.h = train_raw.h;
    data.shape.w = train_raw.w;
    data.shape.c = train_raw.c;
    data.memory = prepare_pcam_lab(train_raw, valid_raw, test_raw);
    data.eval_batch_size = eval_batch(train_raw.h, train_raw.w);
  }
  const ImageSet& train_raw = data.shape;
  // The model is built for the training patches' size: every split must have it.
  for (const std::string split : {"valid", "test"}) {
    Shape s;
    if (streaming) {
      s = (split == "valid" ? data.valid : data.test)->example_shape();
    } else {
      const Shape& x = (split == "valid" ? data.memory.valid.x : data.memory.test.x).shape();
      s.assign(x.begin() + 1, x.end());
    }
    if (s != Shape{train_raw.h, train_raw.w, train_raw.c})
      throw std::runtime_error(find_pcam_files(f.data_dir, split).x_path + ": patches are " + std::to_string(s[0]) +
                               "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]) + " but the training patches (" +
                               find_pcam_files(f.data_dir, "train").x_path + ") are " + std::to_string(train_raw.h) +
                               "x" + std::to_string(train_raw.w) + "x" + std::to_string(train_raw.c));
  }
  if (args.has("evaluate-checkpoint"))
    return evaluate_checkpoint(args.get("evaluate-checkpoint"), f, train_raw, data.memory, recal_batches);
  const bool test_labelled = data.test_labelled();
  app::make_output_dir(f.out_dir);
  const Augmentation augmentation = task3_augmentation();
  std::printf("task3: %lld run(s) x %lld epochs, batch %lld, %d threads, lr schedule %s%s; "
              "augmentation:\n%s\n",
              static_cast<long long>(f.runs), static_cast<long long>(f.epochs),
              static_cast<long long>(f.batch_size), threads, schedule.c_str(),
              recalibrate ? ", batch-norm recalibration" : "", augmentation.describe().c_str());

  json runs = json::array();
  std::vector<Evaluation> train_evals, valid_evals, test_evals;
  std::vector<double> penalties;
  std::vector<uint64_t> seeds;
  std::vector<std::string> run_predictions;
  // The submitted predictions: the run that did best on validation (accuracy, as the lab judged).
  auto best_run = [&] {
    size_t best = 0;
    for (size_t r = 1; r < valid_evals.size(); ++r)
      if (valid_evals[r].accuracy > valid_evals[best].accuracy) best = r;
    return best;
  };
  // results.json and predictions.csv are rewritten after every run (results with "complete":
  // false until the last), so an interrupted multi-hour job keeps the finished runs.
  auto write_results = [&](bool complete) {
    const size_t best = best_run();
    app::write_text_file(f.out_dir + "/predictions.csv", run_predictions[best]);
    json results = {{"app", kProgram}, {"complete", complete}};
    results.update(app::environment_json());
    results["runs"] = runs;
    results["predictions"] = "predictions.csv";
    results["predictions_run"] = best + 1;
    results["settings"] = {{"data_dir", f.data_dir}, {"out", f.out_dir}, {"seed", f.seed},
                           {"threads", f.threads}, {"epochs", f.epochs}, {"batch_size", f.batch_size},
                           {"runs", f.runs}, {"quick", f.quick}, {"train_images", train_limit},
                           {"valid_images", valid_limit}, {"validation_freq", valid_freq},
                           {"bn_recalibrate", recalibrate}, {"recalibrate_batches", recal_batches},
                           {"lr_schedule", schedule}, {"crop", image_size}, {"stream_memory_mb", stream_mb},
                           {"steps_per_epoch", steps_per_epoch}, {"train_eval_images", train_eval_images}, {"l2", 1e-4},
                           {"augmentation", augmentation.describe()},
                           {"optimizer", "AdamW lr 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-7, weight_decay 0.004"}};
    results["report"] = report_json();
    results["wall_seconds"] = clock.seconds();
    app::write_json_file(f.out_dir + "/results.json", results);
  };
  for (int64_t r = 0; r < f.runs; ++r) {
    const uint64_t seed = f.seed + static_cast<uint64_t>(r);
    const app::Stopwatch run_clock;
    std::printf("\n== task3 run %lld/%lld, seed %llu: %s train / %s validation / %s test patches\n",
                static_cast<long long>(r + 1), static_cast<long long>(f.runs),
                static_cast<unsigned long long>(seed), app::grouped(data.train_rows()).c_str(),
                app::grouped(data.valid_rows()).c_str(), app::grouped(data.test_rows()).c_str());
    manual_seed(seed);
    auto model = task3_model(train_raw.h, train_raw.w, train_raw.c, data.num_classes());
    if (r == 0) std::cout << summary(*model, {train_raw.h, train_raw.w, train_raw.c}, "task3");
    AdamW adamw(model->named_parameters());
    if (f.resume) app::check_checkpoint(kProgram, f.checkpoint_path(r + 1));
    const float base_lr = adamw.learning_rate();

    // --inspect and --evaluate-checkpoint work on splits in memory (refused with
    // --stream-memory above). Streamed, the recalibration reads clean training patches from a
    // stream of its own (fit's stream is mid-way through its epochs), shuffled by the run's seed.
    std::unique_ptr<StreamingDataset> recal_train;  // declared first: recal points into it
    std::optional<app::RecalibratedValidation> recal;
    const app::RecalibratedValidation::Options recal_options{.batches = recal_batches, .batch_size = f.batch_size,
                                                             .seed = seed, .auc = true};
    if (recalibrate && data.streamed()) {
      recal_train = std::make_unique<StreamingDataset>(
          PcamReader(find_pcam_files(f.data_dir, "train"), image_size, /*labels_required=*/true),
          StreamOptions{.batch_size = f.batch_size, .seed = mix64(seed ^ 0x7eca1ULL), .shuffle = true,
                        .memory_bytes = data.stream_bytes, .num_classes = data.num_classes()});
      recal.emplace(*model, *recal_train, *data.valid, recal_options);
    } else if (recalibrate) {
      recal.emplace(*model, data.memory.train, data.memory.valid, recal_options);
    }
    FitOptions options{.epochs = f.epochs, .batch_size = f.batch_size, .steps_per_epoch = steps_per_epoch,
                       .validation = data.streamed() ? nullptr : &data.memory.valid,
                       .validation_freq = valid_freq, .seed = seed, .auc = true, .augmentation = &augmentation,
                       .loss = {}, .on_epoch_begin = {}, .on_batch_end = {}, .on_epoch_end = {}, .validate = {}, .checkpoint_path = f.checkpoint_path(r + 1),
                       .checkpoint_every = f.checkpoint_every, .checkpoint_note = "", .resume = f.resume, .stop_requested = {},
                       .communicator = f.communicator, .sync_batch_norm = f.sync_batch_norm,
                       .tensorboard_dir = f.tensorboard_path(r + 1)};
    if (recal) options.validate = [&](int64_t epoch) { return recal->validate(epoch); };
    else options.validate = [&](int64_t) { return data.evaluate_valid(*model); };
    options.on_epoch_begin = [&](int64_t epoch, Optimizer& opt) {
      if (schedule == "cosine") {
        const double lr = 0.5 * base_lr * (1.0 + std::cos(std::numbers::pi * static_cast<double>(epoch) /
                                                          static_cast<double>(f.epochs)));
        opt.set_learning_rate(static_cast<float>(lr));
      }
    };
    History history = data.streamed()
                          ? app::fit_stopping_on_signal(kProgram, *model, adamw, *data.train, options, f, r + 1)
                          : app::fit_stopping_on_signal(kProgram, *model, adamw, data.memory.train, options, f, r + 1);
    if (recal) recal->finish(history);
    double train_seconds = 0;
    for (const EpochLog& e : history.epochs) train_seconds += e.seconds;
    const int64_t steps_done = static_cast<int64_t>(history.epochs.size()) *
                               steps_in_epoch(steps_per_epoch, (data.train_rows() + f.batch_size - 1) / f.batch_size);
    const int64_t images_done = std::min(steps_done * f.batch_size, static_cast<int64_t>(history.epochs.size()) * data.train_rows());
    const Evaluation train_eval = data.evaluate_train(*model);
    const Evaluation valid_eval = data.evaluate_valid(*model);
    Evaluation test_eval;
    if (test_labelled) test_eval = data.evaluate_test(*model);
    const Tensor test_probs = data.predict_test(*model);
    const double penalty = app::regularization_penalty(*model);
    std::printf("run %lld: train %s | validation %s (cross-entropy; L2 penalty %.4f)\n",
                static_cast<long long>(r + 1), figures_text(train_eval).c_str(),
                figures_text(valid_eval).c_str(), penalty);
    std::printf("run %lld: %s training images in %.1f s (%.1f images/s), peak memory %.0f MiB\n",
                static_cast<long long>(r + 1), app::grouped(images_done).c_str(), train_seconds,
                train_seconds > 0 ? images_done / train_seconds : 0.0, peak_resident_mib());

    const std::string run_dir = "run" + std::to_string(r + 1);
    app::make_output_dir(f.out_dir + "/" + run_dir);
    history.write_csv(f.out_dir + "/" + run_dir + "/history.csv");
    write_history_png(f.out_dir + "/" + run_dir + "/curves.png", history,
                      {.title = "task3 run " + std::to_string(r + 1) + ", seed " + std::to_string(seed)});
    run_predictions.push_back(predictions_csv(test_probs));
    app::write_text_file(f.out_dir + "/" + run_dir + "/predictions.csv", run_predictions.back());
    save_model(f.out_dir + "/" + run_dir + "/model.h5", *model, {train_raw.h, train_raw.w, train_raw.c}, "task3");
    if (f.inspect)  // on the validation set: the test labels are kept outside the project
      app::inspect_run(*model, data.memory.valid, f.out_dir + "/" + run_dir + "/inspect", "task3 run " + std::to_string(r + 1),
                       {"normal", "tumour"});
    train_evals.push_back(train_eval);
    valid_evals.push_back(valid_eval);
    penalties.push_back(penalty);
    seeds.push_back(seed);
    json run_json = {{"seed", seed},
                     {"train", app::figures_json(train_eval, true, penalty)},
                     {"valid", app::figures_json(valid_eval, true, penalty)},
                     {"images", {{"train", data.train_rows()}, {"valid", data.valid_rows()}, {"test", data.test_rows()}}},
                     {"training", {{"steps", steps_done}, {"images", images_done}, {"seconds", train_seconds},
                                   {"images_per_second", train_seconds > 0 ? images_done / train_seconds : 0.0},
                                   {"peak_rss_mib", peak_resident_mib()}}},
                     {"history", run_dir + "/history.csv"},
                     {"plot", run_dir + "/curves.png"},
                     {"predictions", run_dir + "/predictions.csv"},
                     {"model", run_dir + "/model.h5"},
                     {"seconds", run_clock.seconds()}};
    if (test_labelled) {
      run_json["test"] = app::figures_json(test_eval, true, penalty);
      test_evals.push_back(test_eval);
    }
    runs.push_back(run_json);
    write_results(false);
  }

  std::vector<std::string> header = {"Table 4: kiln"};
  for (int64_t r = 0; r < f.runs; ++r) header.push_back("Run " + std::to_string(r + 1));
  app::TextTable table(header);
  std::vector<std::vector<std::string>> rows = {{"Seed"},           {"Train loss"},     {"Train accuracy"},
                                                {"Train AUC"},      {"Validation loss"}, {"Validation accuracy"},
                                                {"Validation AUC"}};
  if (test_labelled) rows.insert(rows.end(), {{"Test loss"}, {"Test accuracy"}, {"Test AUC"}});
  for (size_t r = 0; r < valid_evals.size(); ++r) {
    rows[0].push_back(std::to_string(seeds[r]));
    rows[1].push_back(fixed(train_evals[r].loss + penalties[r], 4));
    rows[2].push_back(percent(train_evals[r].accuracy));
    rows[3].push_back(fixed(train_evals[r].auc, 4));
    rows[4].push_back(fixed(valid_evals[r].loss + penalties[r], 4));
    rows[5].push_back(percent(valid_evals[r].accuracy));
    rows[6].push_back(fixed(valid_evals[r].auc, 4));
    if (test_labelled) {
      rows[7].push_back(fixed(test_evals[r].loss + penalties[r], 4));
      rows[8].push_back(percent(test_evals[r].accuracy));
      rows[9].push_back(fixed(test_evals[r].auc, 4));
    }
  }
  for (auto& row : rows) table.row(row);
  app::TextTable report({"Table 4: report (Keras)", "Run 1", "Run 2", "Run 3", "Run 4"});
  std::vector<std::vector<std::string>> rep = {{"Train loss"},      {"Train accuracy"},      {"Train AUC"},
                                               {"Validation loss"}, {"Validation accuracy"}, {"Validation AUC"}};
  for (size_t i = 0; i < kReportValidAcc.size(); ++i) {
    rep[0].push_back(fixed(kReportTrainLoss[i], 4));
    rep[1].push_back(percent(kReportTrainAcc[i]));
    rep[2].push_back(fixed(kReportTrainAuc[i], 2));
    rep[3].push_back(fixed(kReportValidLoss[i], 4));
    rep[4].push_back(percent(kReportValidAcc[i]));
    rep[5].push_back(fixed(kReportValidAuc[i], 2));
  }
  for (auto& row : rep) report.row(row);
  std::printf("\n%s(losses: cross-entropy + L2 penalty, as Keras reports them)\n\n%s\n",
              table.str().c_str(), report.str().c_str());
  const size_t best = best_run();
  std::printf("predictions.csv: %s test patches, from run %zu (best validation accuracy %s)\n",
              app::grouped(data.test_rows()).c_str(), best + 1, percent(valid_evals[best].accuracy).c_str());

  write_results(true);
  std::printf("\nwrote %s/results.json, predictions.csv and run<r>/{history.csv,curves.png,"
              "predictions.csv,model.h5}; %.1f s\n",
              f.out_dir.c_str(), clock.seconds());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return kiln::app::run_main(kProgram, [&] { return run(argc, argv); });
}
