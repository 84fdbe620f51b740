// kiln's own model files: exact round trips (parameters and buffers), version checks, damaged
// and mismatched files, and atomic writes.
#include <gtest/gtest.h>

#include <H5Cpp.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/activation.h"
#include "layers/avg_pool2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "core/io/h5_io.h"
#include "layers/io/keras/keras_import.h"
#include "layers/zoo/lab_models.h"
#include "layers/io/model_file.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string scratch() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("kiln_model_file_" + std::string(info->test_suite_name()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

Tensor lab_images(int64_t n, const Shape& input_shape) {
  const ImageSet raw = load_mnist(std::string(KILN_TEST_DATA_DIR) + "/mnist", "t10k");
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  Shape s = {n};
  s.insert(s.end(), input_shape.begin(), input_shape.end());
  return scale_pixels(raw, rows).reshape(s);
}

void expect_identical(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())), 0);
}

// Randomises every parameter and buffer, so that a missed or swapped tensor shows.
void scramble(Module& m, uint64_t seed) {
  for (auto& [name, t] : m.named_parameters()) {
    Tensor p = t;
    p.copy_(Tensor::uniform(t.shape(), -0.3f, 0.3f, ++seed));
  }
  for (auto& [name, t] : m.named_buffers()) {
    Tensor b = t;
    b.copy_(Tensor::uniform(t.shape(), 0.5f, 1.5f, ++seed));
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a FileError";
  return "";
}

#define EXPECT_MENTIONS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "message: " << (text) << "\nexpected: " << (part)

TEST(ModelFile, Task1RoundTrip) {
  const std::string path = scratch() + "/task1.kiln.h5";
  manual_seed(3);
  auto model = task1_model();
  scramble(*model, 1);
  save_model(path, *model, {28, 28, 1}, "task1");
  const LoadedModel back = load_model(path);
  EXPECT_EQ(back.format, "kiln");
  EXPECT_EQ(back.name, "task1");
  EXPECT_TRUE(back.keras_version.empty());
  EXPECT_EQ(back.input_shape, (Shape{28, 28, 1}));
  const Tensor x = lab_images(50, {28, 28, 1});
  expect_identical(predict(*model, x), predict(*back.model, x));
  EXPECT_EQ(summary(*back.model, {28, 28, 1}), summary(*model, {28, 28, 1}));
}

TEST(ModelFile, Task2RoundTripKeepsBuffersAndOptions) {
  const std::string path = scratch() + "/task2.h5";
  manual_seed(4);
  auto model = task2_model();
  scramble(*model, 50);
  save_model(path, *model, {28, 28, 1});
  const LoadedModel back = load_model(path);
  const auto a = model->named_buffers(), b = back.model->named_buffers();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  }
  EXPECT_EQ(back.model->regularization_loss().item(), model->regularization_loss().item());
  const Tensor x = lab_images(8, {28, 28, 1});
  expect_identical(predict(*model, x), predict(*back.model, x));
}

TEST(ModelFile, ImportedKerasModelRoundTrips) {
  const std::string path = scratch() + "/imported.h5";
  const LoadedModel m = import_keras(std::string(KILN_FIXTURE_DIR) + "/keras/keras2-tiny-cf.h5");
  save_model(path, *m.model, m.input_shape, m.name);
  const LoadedModel back = load_model(path);
  EXPECT_EQ(back.input_shape, (Shape{1, 28, 28}));
  const Tensor x = lab_images(20, {1, 28, 28});
  expect_identical(predict(*m.model, x), predict(*back.model, x));
}

TEST(ModelFile, NewLayersRoundTrip) {
  const std::string path = scratch() + "/layers.h5";
  Sequential s;
  s.add(std::make_shared<Reshape>(Shape{1, 28, 28}));
  s.add(std::make_shared<Permute>(std::vector<int64_t>{2, 3, 1}));
  s.add(std::make_shared<AvgPool2D>(AvgPool2DOptions{.pool = 3, .stride = 2, .padding = Padding::Same}));
  s.add(std::make_shared<Flatten>());
  s.add(std::make_shared<Dense>(DenseOptions{.in_features = 196, .units = 10, .seed = 9}));
  s.add(Softmax());
  save_model(path, s, {784});
  const LoadedModel back = load_model(path);
  const Tensor x = lab_images(10, {784});
  expect_identical(predict(s, x), predict(*back.model, x));
}

TEST(ModelFile, UnknownVersionSaysWhatWasFoundAndExpected) {
  const std::string path = scratch() + "/v2.h5";
  manual_seed(1);
  save_model(path, *task1_model(), {28, 28, 1});
  {
    H5::H5File f(path, H5F_ACC_RDWR);
    f.removeAttr("version");
    h5::write_int(f, "version", 2);
  }
  const std::string msg = error_of([&] { load_model(path); });
  EXPECT_MENTIONS(msg, path);
  EXPECT_MENTIONS(msg, "kiln model file version 2; this kiln reads version 1");
}

// An architecture that nests Sequentials 1,000 deep (made here, not committed; an HDF5
// attribute holds at most 64 KB, which bounds the nesting a file can carry) is refused by the
// nesting limit; so is a layer config of another version.
TEST(ModelFile, DeepNestingAndOtherConfigVersionsAreRefused) {
  const std::string path = scratch() + "/deep.h5";
  manual_seed(1);
  save_model(path, *task1_model(), {28, 28, 1});
  auto rewrite_architecture = [&](const std::string& arch) {
    H5::H5File f(path, H5F_ACC_RDWR);
    f.removeAttr("architecture");
    h5::write_string(f, "architecture", arch);
  };
  std::string deep = R"({"name": "m", "input_shape": [28, 28, 1], "model": )";
  constexpr int kLevels = 1000;
  for (int i = 0; i < kLevels; ++i) deep += R"({"name": "s", "type": "Sequential", "layers": [)";
  for (int i = 0; i < kLevels; ++i) deep += "]}";
  deep += "}";
  rewrite_architecture(deep);
  std::string msg = error_of([&] { load_model(path); });
  EXPECT_MENTIONS(msg, path);
  EXPECT_MENTIONS(msg, "nests Sequentials more than 64 deep");

  rewrite_architecture(R"({"name": "m", "input_shape": [4], "model": {"name": "m", "type": "Sequential", "layers": [)"
                       R"({"name": "d", "type": "Dense", "version": 7, "in_features": 4, "units": 2,)"
                       R"( "use_bias": true, "activation": "linear", "l2": 0}]}})");
  msg = error_of([&] { load_model(path); });
  EXPECT_MENTIONS(msg, "module 'd' of type Dense has config version 7; this kiln reads version 1");
}

TEST(ModelFile, DamagedOrMismatchedFilesAreRefused) {
  const std::string dir = scratch(), path = dir + "/m.h5";
  manual_seed(1);
  save_model(path, *task1_model(), {28, 28, 1});
  {
    H5::H5File f(path, H5F_ACC_RDWR);
    f.unlink("parameters/dense.bias");
    H5::Group g = f.openGroup("parameters");
    h5::write_tensor(g, "dense.bias", Tensor::zeros({11}));
  }
  EXPECT_MENTIONS(error_of([&] { load_model(path); }), "/parameters/dense.bias has shape [11], the architecture needs [10]");
  {
    H5::H5File f(path, H5F_ACC_RDWR);
    f.unlink("parameters/dense.bias");
  }
  EXPECT_MENTIONS(error_of([&] { load_model(path); }), "no dataset /parameters/dense.bias");
  {
    H5::H5File f(path, H5F_ACC_RDWR);
    f.removeAttr("architecture");
    h5::write_string(f, "architecture", R"({"name": "x", "input_shape": [4], "model": {"type": "LSTM", "name": "l"}})");
  }
  EXPECT_MENTIONS(error_of([&] { load_model(path); }), "module 'l' of type 'LSTM'");
}

struct Custom : Module {
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Custom"; }
};

TEST(ModelFile, WritesAtomically) {
  const std::string dir = scratch(), path = dir + "/m.h5";
  manual_seed(1);
  auto model = task1_model();
  save_model(path, *model, {28, 28, 1});
  save_model(path, *model, {28, 28, 1});  // overwriting works
  Sequential bad;
  bad.add(std::make_shared<Custom>(), "mine");
  EXPECT_MENTIONS(error_of([&] { save_model(path, bad, {3}); }), "cannot save module 'mine' of type Custom");
  // A failure while writing leaves neither a temporary file nor a damaged target behind.
  EXPECT_THROW(save_model(dir + "/no/such/dir/m.h5", *model, {28, 28, 1}), FileError);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"m.h5"});
  EXPECT_NO_THROW(load_model(path));
}

}  // namespace
}  // namespace kiln
