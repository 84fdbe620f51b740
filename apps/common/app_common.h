// What the three task apps (task1, task2, task3) share: the common flags, the output directory,
// files that land whole (temporary name, then rename), results.json pieces, the kiln weights
// file, and the tables printed on stdout.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/cli.h"
#include "data/dataset.h"
#include "layers/module.h"
#include "optim/train/distributed/distributed.h"
#include "optim/train/fit.h"

namespace kiln::app {

// A caller mistake on the command line (a flag out of range, a missing data directory): the
// app prints it and exits with status 2, like the flag parser does for unknown flags.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Per-app defaults of the common flags; quick_* replace them under --quick unless the flag
// is given explicitly.
struct CommonDefaults {
  std::string data_dir, out_dir;
  int64_t epochs = 1, batch_size = 32, runs = 1;
  int64_t quick_epochs = 1, quick_runs = 1;
};

// The common flags after parsing, with --quick's replacements applied.
struct CommonFlags {
  std::string data_dir, out_dir;
  uint64_t seed = 1;
  int threads = 0;  // as asked; 0 = all cores
  int64_t epochs = 0, batch_size = 0, runs = 0;
  bool quick = false;
  // Checkpoints: run r's training state goes to checkpoint_dir/run<r>.ckpt.h5 every
  // checkpoint_every epochs (0: at the end of the run only); resume continues from them.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  bool resume = false;
  // checkpoint_dir/run<r>.ckpt.h5 (r 1-based), or "" without checkpoints.
  std::string checkpoint_path(int64_t run) const;
  // Data-parallel training (--distributed, or started by mpirun): the MPI world, else null.
  // On ranks other than 0 the app's stdout goes to /dev/null and out_dir is a private scratch
  // directory inside the real one (removed when the app ends), so the outputs are rank 0's.
  Communicator* communicator = nullptr;
  int rank = 0;
  // --sync-batch-norm: batch statistics over the global batch (FitOptions::sync_batch_norm).
  bool sync_batch_norm = false;
  // --tensorboard DIR: run r's TensorBoard event files go to DIR/run<r> (TensorBoard shows
  // each subdirectory as a run).
  std::string tensorboard_dir;
  // tensorboard_dir/run<r> (r 1-based), or "" without --tensorboard.
  std::string tensorboard_path(int64_t run) const;
  // --inspect: each run's final model gets kiln inspect's pictures in out_dir/run<r>/inspect.
  bool inspect = false;
};

// The rank this process has under an MPI launcher (from the environment, before MPI starts;
// 0 when not launched by one).
int launcher_rank();

// The command line an app parses. `--resume DIR` (the only flag then) is replaced by the
// arguments stored in DIR/args.json when the checkpointed run started, followed by
// `--resume DIR`; a run started with `--checkpoint-dir DIR` stores its arguments there. Throws UsageError when DIR holds no
// arguments, holds another app's, or a fresh run would overwrite an earlier run's checkpoints.
class CommandLine {
 public:
  CommandLine(const std::string& program, int argc, char** argv);
  int argc() const { return static_cast<int>(pointers_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

// Before fit() resumes from `path` (when it exists): reads it once under a cli::Deadline, so a
// damaged checkpoint ends in a clear error instead of a hang inside libhdf5.
void check_checkpoint(const std::string& program, const std::string& path);

// Declares --data-dir --out --seed --threads --epochs --batch-size --runs --quick, the
// checkpoint flags --checkpoint-dir --checkpoint-every --resume, --distributed,
// --sync-batch-norm and --tensorboard.
void add_common_flags(cli::Args& args, const CommonDefaults& defaults);
// Reads them back; throws UsageError naming the flag for a value out of range.
CommonFlags read_common_flags(const cli::Args& args, const CommonDefaults& defaults);
// An optional integer flag declared without a default: its value, or `fallback` when absent.
// Throws UsageError naming the flag when the value is below `min`.
int64_t int_flag(const cli::Args& args, const std::string& name, int64_t fallback, int64_t min);

// Sets kiln's (and OpenBLAS's) thread count when `requested` > 0; returns the count in use.
int apply_threads(int requested);

// Runs an app's body, turning exceptions into a one-line message on stderr that starts with
// the program name: UsageError exits 2, any other error 1. Never lets an exception escape.
int run_main(const std::string& program, const std::function<int()>& body);

// Checks that `dir` is an existing directory; throws UsageError naming `flag` and dir and
// saying what it should hold.
void require_data_dir(const std::string& flag, const std::string& dir, const std::string& holds);
// Creates dir (and parents) for the outputs; throws std::runtime_error naming it on failure.
void make_output_dir(const std::string& dir);

// --inspect: kiln::inspect (optim/inspect/inspect.h) of a run's final model on `data` (images
// scaled as the lab's DataGenerator does, [-1, 1]) into dir, with a one-line summary.
void inspect_run(Module& model, const Dataset& data, const std::string& dir, const std::string& title,
                 const std::vector<std::string>& class_names = {});

// Writes `text` to path through a temporary file in the same directory and a rename, so a
// crash or a full disk never leaves a half-written file under the final name.
void write_text_file(const std::string& path, const std::string& text);
// The same for a JSON document, pretty-printed with 2-space indentation.
void write_json_file(const std::string& path, const nlohmann::json& doc);


// The model's regularisation penalty (the sum of its L2 terms) for the current weights; 0 when
// it has none. Keras reports a model's loss with this penalty included, in evaluate() as in
// training, while kiln's evaluate() gives the cross-entropy alone: the apps add it where they
// print figures to compare with the report's.
double regularization_penalty(const Module& model);

// {"loss": cross-entropy + penalty, "accuracy": ...[, "auc": ...]}, plus "cross_entropy" and
// "l2_penalty" when penalty != 0; accuracy as a fraction. A NaN AUC (one class absent) becomes
// null, since JSON has no NaN.
nlohmann::json figures_json(const Evaluation& e, bool with_auc, double penalty = 0.0);
// kiln_version, threads, BLAS: the facts results.json records about the run's environment.
nlohmann::json environment_json();

// The first n rows of a dataset (views; n >= size keeps all of it).
Dataset first_rows(const Dataset& data, int64_t n);

// Validation for --bn-recalibrate, as FitOptions::validate: before each evaluation the
// batch-norm moving statistics are re-estimated on clean training images with the current
// weights (optim/train/bn_recalibrate.h), the validation set is evaluated, and the moving
// statistics training keeps are put back, so they follow the lab's path whatever is
// validated and a run can be evaluated both ways at its end. Recalibration draws from its own
// stream and batch norm trains on batch statistics, so the weights' path is the same with or
// without it. finish() leaves the statistics re-estimated for the weights fit ended with (the
// same images as the last validation, when the last epoch was validated).
class RecalibratedValidation {
 public:
  struct Options {
    int64_t batches = 50;      // recalibration batches
    int64_t batch_size = 32;
    uint64_t seed = 0;
    bool auc = false;
  };
  // model, train (clean images for the statistics) and valid must outlive this object.
  RecalibratedValidation(Module& model, const Dataset& train, const Dataset& valid, Options options);
  // Splits streamed from their files (task3 --stream-memory): `train` is a source of its own
  // (not the one fit trains from), shuffled, with the recalibration's batch size and seed;
  // each recalibration takes its first options.batches batches of another epoch.
  RecalibratedValidation(Module& model, BatchSource& train, BatchSource& valid, Options options);
  // After `epoch` (1-based) finished epochs: recalibrate, evaluate on the validation set,
  // restore the moving statistics.
  Evaluation validate(int64_t epoch);
  // After fit: recalibrates for the final evaluations.
  void finish(const History& history);

 private:
  void recalibrate(uint64_t salt);

  Module& model_;
  const Dataset* train_ = nullptr;  // in memory, or
  const Dataset* valid_ = nullptr;
  BatchSource* train_source_ = nullptr;  // streamed
  BatchSource* valid_source_ = nullptr;
  Options o_;
};

// A copy of a module's buffers (batch-norm moving statistics) that restore() puts back.
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const Module& model);
  void restore();

 private:
  NamedTensors live_, saved_;
};

// Seconds since construction, by the steady clock.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// --- printed figures ------------------------------------------------------------------------
std::string fixed(double value, int decimals);           // "0.0603"; NaN -> "n/a"
std::string percent(double fraction, int decimals = 2);  // 0.9811 -> "98.11 %"
std::string grouped(int64_t value);                      // 4266 -> "4,266"

// A plain-text table: a header row, then rows; the first column left-aligned, the rest
// right-aligned, columns two spaces apart, a rule under the header.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) : header_(std::move(header)) {}
  TextTable& row(std::vector<std::string> cells);
  std::string str() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace kiln::app
