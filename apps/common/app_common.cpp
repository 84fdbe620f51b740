#include "apps/common/app_common.h"

#include <H5Cpp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <system_error>
#include <thread>

#include "apps/common/stop_on_signal.h"
#include "core/autograd.h"
#include "core/io/h5_io.h"
#include "core/io/write_atomically.h"
#include "core/runtime/cpu.h"
#include "core/runtime/parallel.h"
#include "core/runtime/random.h"
#include "optim/inspect/inspect.h"
#include "optim/train/bn_recalibrate.h"
#include "optim/train/checkpoint.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln::app {
namespace fs = std::filesystem;

namespace {

}  // namespace

void add_common_flags(cli::Args& args, const CommonDefaults& d) {
  args.option("data-dir", "DIR", "directory with the data", d.data_dir);
  args.option("out", "DIR", "output directory (created if missing)", d.out_dir);
  args.option("seed", "N",
              "base seed; run r (1-based) uses seed N + r - 1 for everything random in it "
              "(subset draw, initial weights, batch order, dropout, augmentation)",
              "1");
  args.option("threads", "N", "threads for kiln and OpenBLAS; 0 = all cores", "0");
  args.option("epochs", "N",
              "passes over the training set (default " + std::to_string(d.epochs) +
                  "; with --quick " + std::to_string(d.quick_epochs) + ")");
  args.option("batch-size", "N", "images per training step", std::to_string(d.batch_size));
  args.option("runs", "N",
              "independent runs (default " + std::to_string(d.runs) + "; with --quick " +
                  std::to_string(d.quick_runs) + ")");
  args.flag("quick", "a reduced run that finishes in about a minute (demos, smoke tests); "
                     "explicit --epochs/--runs still win");
  args.option("checkpoint-dir", "DIR",
              "save each run's training state (weights, optimizer, random streams, history) in DIR, "
              "atomically, so a killed run can go on with --resume DIR");
  args.option("checkpoint-every", "N", "with --checkpoint-dir: also checkpoint every N epochs (default: "
                                       "only at the end of each run)");
  args.option("resume", "DIR",
              "continue the run checkpointed in DIR with the arguments it was started with; the result "
              "is bit-identical to an uninterrupted run on the same thread count");
  args.flag("distributed",
            "data-parallel training over MPI: start the app with `mpirun -np N` (on automatically "
            "when mpirun starts it); each rank computes its share of every batch of --batch-size "
            "images, rank 0 prints and writes the outputs, --threads defaults to this machine's "
            "cores divided by its ranks");
  args.flag("sync-batch-norm",
            "with several ranks: batch normalisation uses the statistics of the whole batch, summed "
            "over the ranks (as one process would), instead of each rank's share (the default, "
            "cheaper); every batch then needs at least one image per rank");
  args.option("tensorboard", "DIR",
              "write TensorBoard event files (scalars per epoch, curves) to DIR; run r's go to DIR/run<r>");
  args.flag("inspect",
            "after each run, write kiln inspect's pictures of its final model (confusion matrix, ROC for "
            "two classes, filters, feature maps, Grad-CAM, the worst errors, layer statistics) into "
            "<out>/run<r>/inspect");
}

void check_checkpoint(const std::string& program, const std::string& path) {
  if (path.empty() || !fs::exists(path)) return;
  const cli::Deadline deadline(program, path, 120);
  read_checkpoint(path);
}

std::string CommonFlags::checkpoint_path(int64_t run) const {
  return checkpoint_dir.empty() ? "" : checkpoint_dir + "/run" + std::to_string(run) + ".ckpt.h5";
}

void inspect_run(Module& model, const Dataset& data, const std::string& dir, const std::string& title,
                 const std::vector<std::string>& class_names) {
  InspectOptions o;
  o.out_dir = dir;
  o.title = title;
  o.class_names = class_names;
  o.quiet = true;
  const InspectResult r = inspect(model, data, o);
  std::printf("inspect: %zu pictures and tables of %s in %s\n", r.files.size(), title.c_str(), dir.c_str());
}

std::string CommonFlags::tensorboard_path(int64_t run) const {
  return tensorboard_dir.empty() ? "" : tensorboard_dir + "/run" + std::to_string(run);
}

CommandLine::CommandLine(const std::string& program, int argc, char** argv) {
  std::vector<std::string> given(argv, argv + argc);
  std::string resume_dir, checkpoint_dir;
  for (size_t i = 1; i + 1 < given.size(); ++i) {
    if (given[i] == "--resume") resume_dir = given[i + 1];
    if (given[i] == "--checkpoint-dir") checkpoint_dir = given[i + 1];
  }
  const std::string stored = (resume_dir.empty() ? checkpoint_dir : resume_dir) + "/args.json";
  if (!resume_dir.empty()) {
    if (given.size() != 3)
      throw UsageError("--resume DIR takes no other flags: the run goes on with the arguments stored in " + stored);
    std::ifstream f(stored);
    if (!f) throw UsageError("--resume " + resume_dir + ": no " + stored + " (was the run started with --checkpoint-dir " +
                             resume_dir + "?)");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
      if (j.at("app").get<std::string>() != program)
        throw UsageError("--resume " + resume_dir + ": the checkpoints there are " + j.at("app").get<std::string>() +
                         "'s, not " + program + "'s");
      args_ = j.at("args").get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(stored + " is malformed: " + e.what());
    }
    args_.insert(args_.begin(), given[0]);
    args_.push_back("--resume");
    args_.push_back(resume_dir);
  } else {
    args_ = given;
    // Under mpirun only rank 0 stores the arguments (every rank is started with the same ones).
    if (!checkpoint_dir.empty() && launcher_rank() == 0 &&
        std::find(given.begin(), given.end(), "--help") == given.end()) {
      std::error_code ec;
      if (std::filesystem::exists(stored, ec))
        throw UsageError("--checkpoint-dir " + checkpoint_dir + " already holds a run (" + stored +
                         "); continue it with --resume " + checkpoint_dir + ", or choose another directory");
      make_output_dir(checkpoint_dir);
      write_json_file(stored, {{"app", program}, {"args", std::vector<std::string>(given.begin() + 1, given.end())}});
    }
  }
  for (std::string& a : args_) pointers_.push_back(a.data());
}

int64_t int_flag(const cli::Args& args, const std::string& name, int64_t fallback, int64_t min) {
  if (!args.has(name)) return fallback;
  const int64_t v = args.get_int(name);
  if (v < min)
    throw UsageError("--" + name + " must be at least " + std::to_string(min) + ", got " +
                     std::to_string(v));
  return v;
}

int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

namespace {

// Removes a non-zero rank's scratch output directory when the app ends.
struct ScratchDir {
  std::string path;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};
ScratchDir scratch_dir;

// A hash of the flags every rank must share: all of them but --threads (machines may differ in
// cores; the arithmetic is the same) and --distributed (implied by mpirun).
uint64_t shared_flags_hash(const cli::Args& args) {
  uint64_t h = 0;
  for (const auto& [name, value] : args.values()) {
    if (name == "threads" || name == "distributed") continue;
    h = hash_text(h, name + "=" + value);
  }
  return h;
}

void join_distributed(CommonFlags& f, const cli::Args& args) {
  if (!built_with_mpi())
    throw UsageError("--distributed needs MPI, and this kiln was built without it (install libopenmpi-dev and "
                     "openmpi-bin, then configure and build again)");
  Communicator& world = mpi_world();
  if (world.size() == 1) return;  // mpirun -np 1, or started alone: nothing to share
  f.communicator = &world;
  f.rank = world.rank();
  check_same(world, "the command-line flags", shared_flags_hash(args));
  // The cores of this machine are shared by its ranks: by default each takes its part.
  if (f.threads == 0) f.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_rank_count());
  if (f.rank != 0) {
    if (!std::freopen("/dev/null", "w", stdout)) throw std::runtime_error("cannot silence stdout on rank " + std::to_string(f.rank));
    f.out_dir = f.out_dir + "/.rank" + std::to_string(f.rank);
    scratch_dir.path = f.out_dir;
  }
}

}  // namespace

CommonFlags read_common_flags(const cli::Args& args, const CommonDefaults& d) {
  CommonFlags f;
  f.quick = args.has("quick");
  f.data_dir = args.get("data-dir");
  f.out_dir = args.get("out");
  if (f.out_dir.empty()) throw UsageError("--out must name a directory");
  f.seed = static_cast<uint64_t>(int_flag(args, "seed", 1, 0));
  f.threads = static_cast<int>(int_flag(args, "threads", 0, 0));
  if (f.threads > 1024) throw UsageError("--threads " + std::to_string(f.threads) + " is more than 1024");
  f.epochs = int_flag(args, "epochs", f.quick ? d.quick_epochs : d.epochs, 1);
  f.batch_size = int_flag(args, "batch-size", d.batch_size, 1);
  f.runs = int_flag(args, "runs", f.quick ? d.quick_runs : d.runs, 1);
  f.resume = args.has("resume") && !args.get("resume").empty();
  f.checkpoint_dir = f.resume ? args.get("resume") : (args.has("checkpoint-dir") ? args.get("checkpoint-dir") : "");
  f.checkpoint_every = int_flag(args, "checkpoint-every", 0, 1);
  if (args.has("checkpoint-every") && f.checkpoint_dir.empty())
    throw UsageError("--checkpoint-every needs --checkpoint-dir DIR");
  f.sync_batch_norm = args.has("sync-batch-norm");
  f.inspect = args.has("inspect");
  if (args.has("tensorboard")) {
    f.tensorboard_dir = args.get("tensorboard");
    if (f.tensorboard_dir.empty()) throw UsageError("--tensorboard must name a directory");
  }
  if (args.has("distributed") || launched_by_mpi()) join_distributed(f, args);
  return f;
}

int apply_threads(int requested) {
  if (requested > 0) set_num_threads(requested);
  return num_threads();
}

int run_main(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Stopped& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return e.status();
  } catch (const UsageError& e) {
    std::cerr << program << ": " << cli::one_line(e.what()) << "\n(run `" << program << " --help` for the options)\n";
    return 2;
  } catch (const H5::Exception& e) {  // not a std::exception
    std::cerr << program << ": error: HDF5: " << cli::one_line(e.getDetailMsg()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": error: out of memory: the input or the settings ask for more memory than this "
                            "machine has (a damaged file claiming huge sizes?)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << cli::one_line(e.what()) << "\n";
    return 1;
  } catch (...) {
    std::cerr << program << ": error: unknown exception\n";
    return 1;
  }
}

void require_data_dir(const std::string& flag, const std::string& dir, const std::string& holds) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UsageError("--" + flag + " '" + dir + "' is not a directory (it should hold " + holds + ")");
}

void make_output_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw std::runtime_error(dir + ": cannot create the output directory" +
                             (ec ? ": " + ec.message() : std::string(" (a file is in the way)")));
}

void write_text_file(const std::string& path, const std::string& text) {
  write_bytes_atomically(path, text);
}

void write_json_file(const std::string& path, const nlohmann::json& doc) {
  write_text_file(path, doc.dump(2) + "\n");
}

double regularization_penalty(const Module& model) {
  NoGradGuard no_grad;
  const Tensor r = model.regularization_loss();
  return r.defined() ? static_cast<double>(r.item()) : 0.0;
}

nlohmann::json figures_json(const Evaluation& e, bool with_auc, double penalty) {
  nlohmann::json j = {{"loss", e.loss + penalty}, {"accuracy", e.accuracy}};
  if (penalty != 0.0) {
    j["cross_entropy"] = e.loss;
    j["l2_penalty"] = penalty;
  }
  if (with_auc) j["auc"] = std::isfinite(e.auc) ? nlohmann::json(e.auc) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json environment_json() {
  return {{"kiln_version", KILN_VERSION},
          {"cpu", cpu_model() + " (" + cpu_vector_isa() + "; kiln's loops built for " + compiled_vector_isa() + ", " +
                      std::to_string(compiled_vector_bits()) + "-bit vectors)"},
          {"threads", num_threads()},
          {"blas", std::string(blas_config()) + ", kernel " + blas_core_name()}};
}

Dataset first_rows(const Dataset& data, int64_t n) {
  if (n >= data.size()) return data;
  Dataset d;
  d.num_classes = data.num_classes;
  d.x = data.x.slice(0, n);
  if (data.y_onehot.defined()) d.y_onehot = data.y_onehot.slice(0, n);
  d.labels.assign(data.labels.begin(), data.labels.begin() + n);
  return d;
}

RecalibratedValidation::RecalibratedValidation(Module& model, const Dataset& train,
                                               const Dataset& valid, Options options)
    : model_(model), train_(&train), valid_(&valid), o_(options) {}

RecalibratedValidation::RecalibratedValidation(Module& model, BatchSource& train, BatchSource& valid,
                                               Options options)
    : model_(model), train_source_(&train), valid_source_(&valid), o_(options) {}

void RecalibratedValidation::recalibrate(uint64_t salt) {
  const BatchNormRecalibration rc =
      train_ ? recalibrate_batch_norm(model_, *train_, o_.batches, o_.batch_size, mix64(o_.seed ^ salt))
             : recalibrate_batch_norm(model_, *train_source_, o_.batches, static_cast<int64_t>(salt));
  std::printf("  batch norm recalibrated: %lld layers, %lld clean training images\n",
              static_cast<long long>(rc.layers), static_cast<long long>(rc.images));
  std::fflush(stdout);
}

Evaluation RecalibratedValidation::validate(int64_t epoch) {
  BufferSnapshot moving(model_);
  recalibrate(static_cast<uint64_t>(epoch));
  Evaluation e = valid_ ? evaluate(model_, *valid_, 256, o_.auc) : evaluate(model_, *valid_source_, o_.auc);
  moving.restore();
  return e;
}

void RecalibratedValidation::finish(const History& history) {
  const bool last_validated = !history.epochs.empty() && history.epochs.back().validated;
  recalibrate(last_validated ? static_cast<uint64_t>(history.epochs.back().epoch) : 0xf1a1ULL);
}

BufferSnapshot::BufferSnapshot(const Module& model) : live_(model.named_buffers()) {
  for (const auto& [name, t] : live_) saved_.emplace_back(name, t.clone());
}

void BufferSnapshot::restore() {
  for (size_t i = 0; i < live_.size(); ++i) live_[i].second.copy_(saved_[i].second);
}

std::string fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string percent(double fraction, int decimals) {
  return std::isfinite(fraction) ? fixed(100.0 * fraction, decimals) + " %" : "n/a";
}

std::string grouped(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

TextTable& TextTable::row(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(std::move(cells));
  return *this;
}

std::string TextTable::str() const {
  std::vector<size_t> width(header_.size());
  for (size_t c = 0; c < header_.size(); ++c) {
    width[c] = header_[c].size();
    for (const auto& r : rows_) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      s += c == 0 ? cells[c] + pad : "  " + pad + cells[c];
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  size_t total = 0;
  for (size_t w : width) total += w;
  std::string out = line(header_) + std::string(total + 2 * (width.size() - 1), '-') + "\n";
  for (const auto& r : rows_) out += line(r);
  return out;
}

}  // namespace kiln::app
