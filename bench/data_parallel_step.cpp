// Time per training step, alone or data-parallel over MPI. Run it as
//   build/bench/data_parallel_step [--model task2|task3] [--threads N] [--steps S] [--rounds R]
// by itself (one rank) or under `mpirun -np P` (each rank then defaults to cores / ranks on
// its machine). It trains the lab's model through fit() as the apps do (their augmentation,
// batch size and optimizer; sharding, gradient allreduce and, with --sync-batch-norm,
// synchronised batch norm) on synthetic images: R rounds of S steps after a warm-up round,
// and prints on rank 0 the median time per step, and apart from that the median time of one
// allreduce of a buffer as large as the model's gradient, which is the communication a step
// adds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/runtime/parallel.h"
#include "core/runtime/random.h"
#include "data/augment/augment.h"
#include "data/dataset.h"
#include "data/lab/lab_augmentation.h"
#include "layers/zoo/lab_models.h"
#include "optim/adam.h"
#include "optim/train/distributed/distributed.h"
#include "optim/train/fit.h"

namespace {

using kiln::Communicator;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::string model = "task3";
  int threads = 0;
  int64_t steps = 10, rounds = 5;
  bool sync_batch_norm = false;
};

void usage(const char* program) {
  std::printf(
      "usage: %s [--model task2|task3] [--threads N] [--steps S] [--rounds R] [--sync-batch-norm]\n"
      "Median time per training step of the Task 2 model (28x28x1, batch 16, Adam) or the Task 3\n"
      "model (32x32x3 like the PatchCamelyon slice, batch 70, AdamW), over R rounds of S steps;\n"
      "under `mpirun -np P` the batch is split over P ranks (threads per rank default to cores /\n"
      "ranks on the machine).\n",
      program);
}

int64_t positive(const char* flag, const char* value) {
  char* end = nullptr;
  const long long v = std::strtoll(value, &end, 10);
  if (*value == '\0' || *end != '\0' || v < 1) throw std::invalid_argument(std::string(flag) + " wants a positive integer, got " + value);
  return v;
}

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      usage(argv[0]);
      std::exit(0);
    } else if (a == "--model" && has_value) {
      s.model = argv[++i];
      if (s.model != "task2" && s.model != "task3") throw std::invalid_argument("--model is task2 or task3, not " + s.model);
    } else if (a == "--threads" && has_value) {
      s.threads = static_cast<int>(positive("--threads", argv[++i]));
    } else if (a == "--steps" && has_value) {
      s.steps = positive("--steps", argv[++i]);
    } else if (a == "--rounds" && has_value) {
      s.rounds = positive("--rounds", argv[++i]);
    } else if (a == "--sync-batch-norm") {
      s.sync_batch_norm = true;
    } else {
      throw std::invalid_argument("unknown argument or missing value: " + a + " (see --help)");
    }
  }
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int run(int argc, char** argv) {
  const Settings s = parse(argc, argv);
  Communicator* comm = kiln::launched_by_mpi() ? &kiln::mpi_world() : nullptr;
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  const int hardware = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  kiln::set_num_threads(s.threads > 0 ? s.threads : std::max(1, hardware / kiln::local_rank_count()));

  const bool task3 = s.model == "task3";
  const int64_t batch = task3 ? 70 : 16, side = task3 ? 32 : 28, channels = task3 ? 3 : 1, classes = task3 ? 2 : 10;
  kiln::manual_seed(1);
  auto model = task3 ? kiln::task3_model(32, 32, 3, 2) : kiln::task2_model();
  const kiln::Augmentation augmentation = task3 ? kiln::task3_augmentation() : kiln::task2_augmentation();
  // The apps' optimizers with their default settings: Adam for Task 2, AdamW for Task 3.
  std::unique_ptr<kiln::Optimizer> optimizer;
  if (task3)
    optimizer = std::make_unique<kiln::AdamW>(model->named_parameters());
  else
    optimizer = std::make_unique<kiln::Adam>(model->named_parameters());

  // One round's images: uniform noise in [-1, 1] (the apps' scaling) and cycling labels.
  kiln::Dataset data;
  data.x = kiln::Tensor::uniform({s.steps * batch, side, side, channels}, -1.0f, 1.0f, 7);
  for (int64_t i = 0; i < s.steps * batch; ++i) data.labels.push_back(static_cast<int32_t>(i % classes));
  data.num_classes = classes;
  data.y_onehot = kiln::one_hot(data.labels, classes);

  kiln::FitOptions options{.epochs = 1, .batch_size = batch, .seed = 3, .quiet = true, .augmentation = &augmentation};
  options.communicator = comm;
  options.sync_batch_norm = s.sync_batch_norm;
  std::vector<double> per_step;
  for (int64_t r = 0; r <= s.rounds; ++r) {  // round 0 warms up
    if (comm) comm->barrier();
    const auto start = Clock::now();
    kiln::fit(*model, *optimizer, data, options);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (r > 0) per_step.push_back(seconds / static_cast<double>(s.steps));
  }

  int64_t params = 0;
  for (const auto& [name, t] : model->named_parameters()) params += t.numel();
  std::vector<double> reduce_times;
  if (comm) {
    std::vector<float> buffer(static_cast<size_t>(params), 1.0f);
    for (int i = 0; i < 11; ++i) {
      comm->barrier();
      const auto start = Clock::now();
      comm->allreduce_sum(buffer.data(), params);
      reduce_times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  if (rank == 0) {
    std::printf("%s model, batch %lld over %d rank(s) x %d thread(s)%s: %.1f ms per step (median of %lld rounds "
                "of %lld steps; rounds %.1f-%.1f ms)\n",
                s.model.c_str(), static_cast<long long>(batch), ranks, kiln::num_threads(),
                s.sync_batch_norm ? ", synchronised batch norm" : "", 1e3 * median(per_step),
                static_cast<long long>(s.rounds), static_cast<long long>(s.steps),
                1e3 * *std::min_element(per_step.begin(), per_step.end()),
                1e3 * *std::max_element(per_step.begin(), per_step.end()));
    if (comm)
      std::printf("allreduce of the gradient (%lld floats, %.1f MB): %.2f ms (median of 11)\n",
                  static_cast<long long>(params), 4e-6 * static_cast<double>(params), 1e3 * median(reduce_times));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "data_parallel_step: %s\n", e.what());
    return 1;
  }
}
