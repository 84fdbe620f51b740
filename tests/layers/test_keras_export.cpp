// Export to Keras' legacy HDF5 layout: the file tree Keras (and h5py) expect, and exact
// round trips through the importer for the lab's models and an imported channels-first model.
#include <gtest/gtest.h>

#include <H5Cpp.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/batch_norm2d.h"
#include "layers/graph.h"
#include "core/io/h5_io.h"
#include "layers/io/keras/keras_export.h"
#include "layers/io/keras/keras_import.h"
#include "layers/zoo/lab_models.h"
#include "layers/io/model_file.h"
#include "optim/adam.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string scratch() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("kiln_export_" + std::string(info->test_suite_name()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

ImageSet mnist_test() { return load_mnist(std::string(KILN_TEST_DATA_DIR) + "/mnist", "t10k"); }

// The first n test images as the lab feeds them (2*p/255 - 1), reshaped to input_shape.
Tensor lab_images(int64_t n, const Shape& input_shape) {
  const ImageSet raw = mnist_test();
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  Shape s = {n};
  s.insert(s.end(), input_shape.begin(), input_shape.end());
  return scale_pixels(raw, rows).reshape(s);
}

void expect_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())), 0)
      << what << ": predictions differ after the round trip";
}

// Task 1, trained for one short epoch so the weights are not the initial ones.
std::shared_ptr<Sequential> trained_task1() {
  manual_seed(7);
  auto model = task1_model();
  const ImageSet raw = load_mnist(std::string(KILN_TEST_DATA_DIR) + "/mnist", "train");
  std::vector<int64_t> rows(512);
  for (int64_t i = 0; i < 512; ++i) rows[static_cast<size_t>(i)] = i;
  const Dataset train = make_dataset(raw, rows, 10);
  Adam adam(model->named_parameters(), {});
  fit(*model, adam, train, {.epochs = 1, .batch_size = 64, .seed = 3, .quiet = true});
  return model;
}

TEST(KerasExport, Task1RoundTripIsExact) {
  const std::string path = scratch() + "/task1.h5";
  auto model = trained_task1();
  export_keras(path, *model, {28, 28, 1});
  const LoadedModel back = load_model(path);
  EXPECT_EQ(back.format, "keras-h5");
  EXPECT_EQ(back.keras_version, kKerasExportVersion);
  EXPECT_EQ(back.input_shape, (Shape{28, 28, 1}));
  const Tensor x = lab_images(100, {28, 28, 1});
  expect_identical(predict(*model, x), predict(*back.model, x), "task1");
  EXPECT_TRUE(back.model->ends_in_softmax());
}

// The tree h5py shows for a Keras 2 model file, which Keras' legacy loader reads.
TEST(KerasExport, Task1FileHasKerasLayout) {
  const std::string path = scratch() + "/task1.h5";
  manual_seed(1);
  auto model = task1_model();
  export_keras(path, *model, {28, 28, 1}, "task1");
  H5::H5File f(path, H5F_ACC_RDONLY);
  EXPECT_EQ(h5::read_string(f, "keras_version", path), "2.13.1");
  EXPECT_EQ(h5::read_string(f, "backend", path), "tensorflow");
  const json cfg = json::parse(h5::read_string(f, "model_config", path));
  EXPECT_EQ(cfg["class_name"], "Sequential");
  EXPECT_EQ(cfg["config"]["name"], "task1");
  const json& layers = cfg["config"]["layers"];
  ASSERT_EQ(layers.size(), 7u);
  EXPECT_EQ(layers[0]["class_name"], "InputLayer");
  EXPECT_EQ(layers[0]["config"]["batch_input_shape"], json::parse("[null, 28, 28, 1]"));
  EXPECT_EQ(layers[1]["class_name"], "Conv2D");
  EXPECT_EQ(layers[1]["config"]["filters"], 4);
  EXPECT_EQ(layers[1]["config"]["kernel_size"], json::parse("[3, 3]"));
  EXPECT_EQ(layers[1]["config"]["padding"], "same");
  EXPECT_EQ(layers[1]["config"]["activation"], "relu");
  EXPECT_EQ(layers[2]["class_name"], "MaxPooling2D");
  EXPECT_EQ(layers[5]["class_name"], "Flatten");
  EXPECT_EQ(layers[6]["class_name"], "Dense");
  EXPECT_EQ(layers[6]["config"]["units"], 10);
  EXPECT_EQ(layers[6]["config"]["activation"], "softmax");

  const H5::Group w = f.openGroup("model_weights");
  EXPECT_EQ(h5::read_string_list(w, "layer_names", path),
            (std::vector<std::string>{"conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense"}));
  EXPECT_EQ(h5::read_string(w, "keras_version", path), "2.13.1");
  EXPECT_EQ(h5::read_string_list(w.openGroup("conv2d"), "weight_names", path),
            (std::vector<std::string>{"conv2d/kernel:0", "conv2d/bias:0"}));
  EXPECT_EQ(h5::read_string_list(w.openGroup("max_pooling2d"), "weight_names", path), std::vector<std::string>{});
  EXPECT_EQ(h5::dataset_shape(f.openDataSet("model_weights/conv2d/conv2d/kernel:0")), (Shape{3, 3, 1, 4}));
  EXPECT_EQ(h5::dataset_shape(f.openDataSet("model_weights/dense/dense/kernel:0")), (Shape{392, 10}));
  const Tensor kernel = h5::read_tensor(f.openDataSet("model_weights/conv2d_1/conv2d_1/kernel:0"), path, "kernel");
  EXPECT_EQ(kernel.to_vector(), model->named_parameters()[2].second.to_vector());
}

// Task 2: nested conv blocks with batch norm, whose groups list trainable weights first.
TEST(KerasExport, Task2NestedBlocksRoundTrip) {
  const std::string path = scratch() + "/task2.h5";
  manual_seed(2);
  auto model = task2_model();
  // Non-trivial moving statistics, so that losing or swapping them shows.
  uint64_t seed = 100;
  for (auto& [name, t] : model->named_buffers()) {
    Tensor buf = t;
    const bool var = name.find("variance") != std::string::npos;
    buf.copy_(Tensor::uniform(t.shape(), var ? 0.5f : -0.5f, var ? 2.0f : 0.5f, ++seed));
  }
  export_keras(path, *model, {28, 28, 1});
  const LoadedModel back = load_model(path);
  const Tensor x = lab_images(8, {28, 28, 1});
  expect_identical(predict(*model, x), predict(*back.model, x), "task2");

  H5::H5File f(path, H5F_ACC_RDONLY);
  const std::vector<std::string> names =
      h5::read_string_list(f.openGroup("model_weights/block1"), "weight_names", path);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "conv2d/kernel:0", "conv2d/bias:0", "batch_normalization/gamma:0",
                       "batch_normalization/beta:0", "conv2d_1/kernel:0", "conv2d_1/bias:0",
                       "batch_normalization_1/gamma:0", "batch_normalization_1/beta:0",
                       "batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0",
                       "batch_normalization_1/moving_mean:0", "batch_normalization_1/moving_variance:0"}));
  const json cfg = json::parse(h5::read_string(f, "model_config", path));
  EXPECT_EQ(cfg["config"]["layers"][1]["class_name"], "Sequential");
  EXPECT_EQ(cfg["config"]["layers"][1]["config"]["layers"][1]["class_name"], "BatchNormalization");
  EXPECT_EQ(cfg["config"]["layers"][1]["config"]["layers"][0]["config"]["kernel_regularizer"]["class_name"], "L1L2");
}

// An imported channels-first model (with the importer's Permutes, a Reshape, a nested
// block) goes back out to Keras and in again unchanged.
TEST(KerasExport, ImportedChannelsFirstModelRoundTrips) {
  const std::string path = scratch() + "/nested.h5";
  const LoadedModel m = import_keras(std::string(KILN_FIXTURE_DIR) + "/keras/keras2-nested-cf.h5");
  export_keras(path, *m.model, m.input_shape);
  const LoadedModel back = load_model(path);
  EXPECT_EQ(back.input_shape, (Shape{784}));
  const Tensor x = lab_images(20, {784});
  expect_identical(predict(*m.model, x), predict(*back.model, x), "keras2-nested-cf");
}

// Functional graphs, imported (residual Adds, Concatenate, padding, global pooling, and
// channels-first layout changes as nodes of their own) and exported as Keras functional
// models: the file is a "Functional" config whose layers name what they read, and reading it
// back keeps every prediction.
TEST(KerasExport, ImportedResidualGraphsRoundTrip) {
  for (const char* file : {"keras2-residual.h5", "keras2-residual-cf.h5", "keras3-residual.keras"}) {
    SCOPED_TRACE(file);
    const std::string path = scratch() + "/graph.h5";
    const LoadedModel m = import_keras(std::string(KILN_FIXTURE_DIR) + "/keras/" + file);
    export_keras(path, *m.model, m.input_shape, "graph");
    {
      H5::H5File f(path, H5F_ACC_RDONLY);
      const json config = json::parse(h5::read_string(f, "model_config", path));
      EXPECT_EQ(config["class_name"], "Functional");
      bool joined = false;
      for (const json& l : config["config"]["layers"])
        joined = joined || (l["class_name"] == "Add" && l["inbound_nodes"][0].size() == 2);
      EXPECT_TRUE(joined) << "an Add reading two layers";
    }
    const LoadedModel back = load_model(path);
    EXPECT_EQ(back.input_shape, m.input_shape);
    EXPECT_NE(dynamic_cast<Graph*>(back.model.get()), nullptr);
    const Tensor x = lab_images(20, m.input_shape);
    expect_identical(predict(*m.model, x), predict(*back.model, x), file);
  }
}

struct Custom : Module {
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Custom"; }
};

TEST(KerasExport, UnsupportedModuleAndWrongInputAreRefused) {
  const std::string dir = scratch();
  Sequential s;
  s.add(std::make_shared<Custom>(), "mine");
  try {
    export_keras(dir + "/custom.h5", s, {4});
    FAIL() << "expected an error";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot export module 'mine' of type Custom"), std::string::npos) << e.what();
  }
  manual_seed(1);
  auto task1 = task1_model();
  EXPECT_THROW(export_keras(dir + "/bad.h5", *task1, {32, 32, 3}), FileError);
  EXPECT_FALSE(fs::exists(dir + "/bad.h5"));
  EXPECT_FALSE(fs::exists(dir + "/custom.h5"));
}

}  // namespace
}  // namespace kiln
