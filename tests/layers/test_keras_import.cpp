// The Keras importer on real Keras files (the MIT-licensed keras3.1-convnet pair, legacy
// HDF5 and .keras zip) and on Keras-2-layout files made with h5py, against an independent
// numpy forward pass (tests/fixtures/make_keras_outputs.py); and its errors on damaged,
// foreign and unsupported files.
#include <gtest/gtest.h>

#include <H5Cpp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/formats/idx.h"
#include "core/io/h5_io.h"
#include "core/io/zip_archive.h"
#include "layers/concatenate.h"
#include "layers/graph.h"
#include "layers/io/keras/keras_import.h"
#include "layers/io/model_file.h"
#include "layers/permute.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFixtures = std::string(KILN_FIXTURE_DIR) + "/keras";
const std::string kExpected = kFixtures + "/expected_outputs.h5";

std::string fixture(const std::string& name) { return kFixtures + "/" + name; }

// A fresh scratch directory per test.
std::string scratch() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("kiln_keras_" + std::string(info->test_suite_name()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// The first n MNIST test images of the committed slice as the model takes them:
// float(scale * pixel), shaped [n, input_shape...].
Tensor images(int64_t n, const Shape& input_shape, double scale) {
  const ImageSet raw = load_mnist(std::string(KILN_TEST_DATA_DIR) + "/mnist", "t10k");
  Shape s = {n};
  s.insert(s.end(), input_shape.begin(), input_shape.end());
  Tensor x = Tensor::empty(s);
  EXPECT_EQ(x.numel(), n * raw.row_size());
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(scale * raw.pixels[static_cast<size_t>(i)]);
  return x;
}

Tensor expected_outputs(const std::string& model) {
  H5::H5File f(kExpected, H5F_ACC_RDONLY);
  EXPECT_EQ(h5::read_int(f, "version", kExpected), 1) << "regenerate with make_keras_outputs.py";
  return h5::read_tensor(f.openDataSet(model), kExpected, model);
}

// what() of the FileError that f throws, or a failure.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than FileError: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected a FileError";
  return "";
}

#define EXPECT_MENTIONS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "message: " << (text) << "\nexpected it to mention: " << (part)

// --- outputs against the independent forward pass ------------------------------------------

struct FixtureCase {
  std::string file, format, keras_version;
  Shape input_shape;
};
void PrintTo(const FixtureCase& c, std::ostream* os) { *os << c.file; }

class KerasFixtures : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(KerasFixtures, OutputsMatchNumpyForwardPass) {
  const FixtureCase& c = GetParam();
  const LoadedModel m = import_keras(fixture(c.file));
  EXPECT_EQ(m.format, c.format);
  EXPECT_EQ(m.keras_version, c.keras_version);
  EXPECT_EQ(m.input_shape, c.input_shape);
  const Tensor want = expected_outputs(c.file);
  const int64_t n = want.size(0);
  const Tensor got = predict(*m.model, images(n, m.input_shape, 1.0 / 255.0), 32);
  ASSERT_EQ(got.shape(), want.shape());
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(got.data()[i]) - want.data()[i]));
  EXPECT_LT(worst, 1e-5) << c.file << ": largest difference from the numpy forward pass";
  EXPECT_TRUE(m.model->ends_in_softmax()) << c.file;
  EXPECT_FALSE(m.model->is_training()) << "an imported model comes back in inference mode";
}

INSTANTIATE_TEST_SUITE_P(
    Files, KerasFixtures,
    ::testing::Values(FixtureCase{"keras3.1-convnet.h5", "keras-h5", "3.1.1", {28, 28, 1}},
                      FixtureCase{"keras3.1-convnet.keras", "keras-zip", "3.1.1", {28, 28, 1}},
                      FixtureCase{"keras2-tiny.h5", "keras-h5", "2.2.4", {28, 28, 1}},
                      FixtureCase{"keras2-tiny-cf.h5", "keras-h5", "2.2.4", {1, 28, 28}},
                      FixtureCase{"keras2-nested-cf.h5", "keras-h5", "2.13.1", {784}},
                      FixtureCase{"keras3-functional.keras", "keras-zip", "3.3.3", {28, 28, 1}},
                      // Functional graphs: residual Adds, Concatenates, padding, global pooling.
                      FixtureCase{"keras2-residual.h5", "keras-h5", "2.2.4", {28, 28, 1}},
                      FixtureCase{"keras2-residual-cf.h5", "keras-h5", "2.2.4", {1, 28, 28}},
                      FixtureCase{"keras3-residual.keras", "keras-zip", "3.3.3", {28, 28, 1}}),
    [](const ::testing::TestParamInfo<FixtureCase>& info) {
      std::string n = info.param.file;
      std::replace_if(n.begin(), n.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
      return n;
    });

TEST(KerasImport, AFunctionalGraphBecomesAGraphWithKerasConnections) {
  const LoadedModel m = import_keras(fixture("keras3-residual.keras"));
  auto* g = dynamic_cast<Graph*>(m.model.get());
  ASSERT_NE(g, nullptr) << "a functional model that is not a chain imports as a Graph";
  EXPECT_EQ(g->input_names(), std::vector<std::string>{"input_layer"});
  EXPECT_EQ(g->output_name(), "probs");
  std::map<std::string, std::vector<std::string>> reads;
  for (const Graph::Node& n : g->nodes()) reads[n.name] = n.inputs;
  EXPECT_EQ(reads["shortcut"], (std::vector<std::string>{"stem", "body_bn"}));
  EXPECT_EQ(reads["join"], (std::vector<std::string>{"branch_a", "branch_b", "shortcut"}));
  // Parameters carry the Keras layer names.
  bool found = false;
  for (const auto& [name, t] : g->named_parameters()) found = found || name == "branch_b.kernel";
  EXPECT_TRUE(found);
  const std::string s = summary(*g, m.input_shape);
  EXPECT_MENTIONS(s, "Connected to");
  EXPECT_MENTIONS(s, "branch_a, branch_b, shortcut");

  // The channels-first graph: the input joined with a convolution's output needs one layout
  // change before the Add, and the Concatenate on Keras' axis 1 joins kiln's channels.
  const LoadedModel cf = import_keras(fixture("keras2-residual-cf.h5"));
  auto* gcf = dynamic_cast<Graph*>(cf.model.get());
  ASSERT_NE(gcf, nullptr);
  for (const Graph::Node& n : gcf->nodes()) reads[n.name] = n.inputs;
  EXPECT_EQ(reads["add_0"], (std::vector<std::string>{"input_1", "conv2d_0_to_channels_first"}));
  for (const Graph::Node& n : gcf->nodes())
    if (n.name == "concatenate_1") EXPECT_EQ(dynamic_cast<Concatenate&>(*n.module).axis(), 3);
}

TEST(KerasImport, RealConvnetHasKerasLayerNamesAndParameterCount) {
  for (const char* file : {"keras3.1-convnet.h5", "keras3.1-convnet.keras"}) {
    const LoadedModel m = load_model(fixture(file));
    EXPECT_EQ(m.name, "sequential");
    EXPECT_EQ(m.model->count_trainable(), 34826) << file;  // as the data README states
    std::vector<std::string> names;
    for (const auto& [name, module] : m.model->named_children()) names.push_back(name);
    EXPECT_EQ(names, (std::vector<std::string>{"conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1",
                                               "flatten", "dropout", "dense"}))
        << file;
  }
}

// In a .keras file the weight groups are named by class and creation order (layers/conv2d,
// layers/conv2d_1, ...), whatever the layers are called; the model keeps the layers' names.
TEST(KerasImport, KerasZipGroupsAreNamedByClassNotByLayerName) {
  const LoadedModel m = import_keras(fixture("keras3-functional.keras"));
  EXPECT_EQ(m.name, "functional");
  std::vector<std::string> names;
  for (const auto& [name, module] : m.model->named_children()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"features", "norm", "features_2", "act", "pool", "flat",
                                             "classifier", "probs"}));
}

TEST(KerasImport, TheTwoRealFilesHoldDifferentWeights) {
  const LoadedModel h5 = import_keras(fixture("keras3.1-convnet.h5"));
  const LoadedModel zip = import_keras(fixture("keras3.1-convnet.keras"));
  const auto a = h5.model->named_parameters(), b = zip.model->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NE(a[0].second.to_vector(), b[0].second.to_vector());
}

// Channels-first models take (C,H,W) examples; kiln runs them in NHWC behind a Permute.
TEST(KerasImport, ChannelsFirstModelGetsALayoutChangeAtItsInput) {
  const LoadedModel m = import_keras(fixture("keras2-tiny-cf.h5"));
  auto* seq = dynamic_cast<Sequential*>(m.model.get());
  ASSERT_NE(seq, nullptr);
  ASSERT_GE(seq->size(), 1u);
  const auto* first = dynamic_cast<const Permute*>(&(*seq)[0]);
  ASSERT_NE(first, nullptr) << "expected a Permute before the first channels_first layer";
  EXPECT_EQ(first->dims(), (std::vector<int64_t>{2, 3, 1}));
}

// The fixture's Flatten order is what the expected outputs check; flipping the Flatten's
// data_format must change the outputs, or the check could not tell the orders apart.
TEST(KerasImport, FlattenDataFormatDecidesTheOrder) {
  const std::string dir = scratch(), copy = dir + "/flipped.h5";
  fs::copy_file(fixture("keras2-nested-cf.h5"), copy);
  {
    H5::H5File f(copy, H5F_ACC_RDWR);
    json cfg = json::parse(h5::read_string(f, "model_config", copy));
    for (json& l : cfg["config"]["layers"])
      if (l["class_name"] == "Flatten") l["config"]["data_format"] = "channels_first";
    f.removeAttr("model_config");
    h5::write_string(f, "model_config", cfg.dump());
  }
  const LoadedModel m = import_keras(copy);
  const Tensor want = expected_outputs("keras2-nested-cf.h5");
  const Tensor got = predict(*m.model, images(want.size(0), m.input_shape, 1.0 / 255.0));
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(got.data()[i]) - want.data()[i]));
  EXPECT_GT(worst, 1e-3);
}

// --- errors -------------------------------------------------------------------------------

std::string truncated_copy(const std::string& source, const std::string& dir, double fraction) {
  std::ifstream in(source, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string out = dir + "/cut_" + fs::path(source).filename().string();
  std::ofstream(out, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() * fraction));
  return out;
}

TEST(KerasImportErrors, TruncatedH5NamesTheFile) {
  const std::string cut = truncated_copy(fixture("keras3.1-convnet.h5"), scratch(), 0.5);
  const std::string msg = error_of([&] { load_model(cut); });
  EXPECT_MENTIONS(msg, cut);
  EXPECT_MENTIONS(msg, "truncated");
}

TEST(KerasImportErrors, TruncatedKerasZipNamesTheFile) {
  const std::string cut = truncated_copy(fixture("keras3.1-convnet.keras"), scratch(), 0.6);
  const std::string msg = error_of([&] { load_model(cut); });
  EXPECT_MENTIONS(msg, cut);
  EXPECT_MENTIONS(msg, "truncated");
}

TEST(KerasImportErrors, DamagedZipEntryFailsItsChecksum) {
  const std::string dir = scratch(), copy = dir + "/damaged.keras";
  std::ifstream in(fixture("keras3.1-convnet.keras"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes[bytes.size() / 2] ^= 0x40;  // inside model.weights.h5, the bulk of the archive
  std::ofstream(copy, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string msg = error_of([&] { load_model(copy); });
  EXPECT_MENTIONS(msg, copy);
  EXPECT_MENTIONS(msg, "model.weights.h5");
  EXPECT_MENTIONS(msg, "CRC-32");
}

TEST(KerasImportErrors, ForeignHdf5IsNotAKerasModel) {
  const std::string pcam = std::string(KILN_TEST_DATA_DIR) + "/pcam/valid.h5";
  const std::string msg = error_of([&] { load_model(pcam); });
  EXPECT_MENTIONS(msg, pcam);
  EXPECT_MENTIONS(msg, "not a Keras model file");
}

TEST(KerasImportErrors, TextFileAndMissingFile) {
  const std::string dir = scratch(), text = dir + "/notes.h5";
  std::ofstream(text) << "not a model\n";
  EXPECT_MENTIONS(error_of([&] { load_model(text); }), "not a model file");
  EXPECT_MENTIONS(error_of([&] { load_model(dir + "/absent.keras"); }), "file not found");
}

// A copy of keras2-tiny.h5 whose model_config (and optionally other attributes) is edited.
std::string edited_tiny(const std::string& dir, const std::function<void(json&)>& edit,
                        const std::function<void(H5::H5File&)>& more = nullptr) {
  const std::string copy = dir + "/edited.h5";
  fs::copy_file(fixture("keras2-tiny.h5"), copy, fs::copy_options::overwrite_existing);
  H5::H5File f(copy, H5F_ACC_RDWR);
  json cfg = json::parse(h5::read_string(f, "model_config", copy));
  edit(cfg);
  f.removeAttr("model_config");
  h5::write_string(f, "model_config", cfg.dump());
  if (more) more(f);
  return copy;
}

json& layer_named(json& cfg, const std::string& name) {
  for (json& l : cfg["config"]["layers"])
    if (l["config"]["name"] == name) return l;
  throw std::runtime_error("no layer " + name);
}

TEST(KerasImportErrors, UnsupportedOptionNamesLayerAndOption) {
  const std::string dir = scratch();
  const std::string dilated = edited_tiny(dir, [](json& c) { layer_named(c, "conv2d_1")["config"]["dilation_rate"] = {2, 2}; });
  std::string msg = error_of([&] { import_keras(dilated); });
  EXPECT_MENTIONS(msg, dilated);
  EXPECT_MENTIONS(msg, "Conv2D 'conv2d_1' uses dilation_rate (2, 2); kiln supports 1");

  const std::string elu = edited_tiny(dir, [](json& c) { layer_named(c, "activation_1")["config"]["activation"] = "elu"; });
  msg = error_of([&] { import_keras(elu); });
  EXPECT_MENTIONS(msg, "Activation 'activation_1' uses activation 'elu'");

  const std::string strided = edited_tiny(dir, [](json& c) { layer_named(c, "conv2d_1")["config"]["strides"] = {1, 2}; });
  EXPECT_MENTIONS(error_of([&] { import_keras(strided); }), "Conv2D 'conv2d_1' has strides (1, 2)");
}

TEST(KerasImportErrors, UnsupportedLayerNamesItsClass) {
  const std::string path = edited_tiny(scratch(), [](json& c) {
    json& l = layer_named(c, "activation_1");
    l["class_name"] = "LSTM";
    l["config"]["name"] = "lstm_1";
  });
  const std::string msg = error_of([&] { import_keras(path); });
  EXPECT_MENTIONS(msg, path);
  EXPECT_MENTIONS(msg, "layer 'lstm_1' is a LSTM");
  // The list of what kiln imports comes from the per-class table, so it names every class.
  for (const char* cls : {"InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten", "Dense", "Dropout",
                          "BatchNormalization", "Activation", "ReLU", "Softmax", "Reshape", "Permute", "Add",
                          "Concatenate", "GlobalAveragePooling2D", "ZeroPadding2D"})
    EXPECT_MENTIONS(msg, cls);
}

// A config that nests Sequential models 100,000 deep (made here, not committed; 2.5 MB of
// JSON) is refused with an error naming the limit, not a stack overflow.
TEST(KerasImportErrors, DeeplyNestedModelsAreRefused) {
  constexpr int kLevels = 100000;
  std::string config;
  config.reserve(kLevels * 64);
  config += R"({"class_name": "Sequential", "config": {"name": "m0", "layers": [)"
            R"({"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [null, 4]}},)";
  for (int i = 1; i < kLevels; ++i) config += R"({"class_name": "Sequential", "config": {"name": "m", "layers": [)";
  for (int i = 1; i < kLevels; ++i) config += "]}}";
  config += "]}}";
  const std::string msg = error_of([&] { build_keras_model(config, "deep.json"); });
  EXPECT_MENTIONS(msg, "deep.json");
  EXPECT_MENTIONS(msg, "nests models more than 64 deep");

  // Keras 3 inbound_nodes nested deeply inside a functional layer's kwargs: walked without
  // recursion (the model is then refused for another reason, or built).
  std::string nodes = R"({"args": [)";
  for (int i = 0; i < kLevels; ++i) nodes += "[";
  for (int i = 0; i < kLevels; ++i) nodes += "]";
  nodes += "]}";
  const std::string functional =
      R"({"class_name": "Functional", "config": {"name": "f", "layers": [)"
      R"({"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_shape": [null, 4]}, "inbound_nodes": []},)"
      R"({"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2}, "inbound_nodes": [)" + nodes +
      R"(]}], "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}})";
  const std::string msg2 = error_of([&] { build_keras_model(functional, "deep-nodes.json"); });
  EXPECT_MENTIONS(msg2, "deep-nodes.json");
}

TEST(KerasImportErrors, ALayerOtherThanAMergeCalledOnTwoInputs) {
  const std::string dir = scratch(), copy = dir + "/branch.h5";
  fs::copy_file(fixture("keras2-tiny-cf.h5"), copy);
  {
    H5::H5File f(copy, H5F_ACC_RDWR);
    json cfg = json::parse(h5::read_string(f, "model_config", copy));
    for (json& l : cfg["config"]["layers"])
      if (l["name"] == "dense_1")  // two inputs, as an Add or Concatenate would have
        l["inbound_nodes"] = json::parse(R"([[["flatten_1", 0, 0, {}], ["input_1", 0, 0, {}]]])");
    f.removeAttr("model_config");
    h5::write_string(f, "model_config", cfg.dump());
  }
  const std::string msg = error_of([&] { import_keras(copy); });
  EXPECT_MENTIONS(msg, "layer 'dense_1' (Dense) is called on 2 inputs");
  EXPECT_MENTIONS(msg, "Add and Concatenate");
}

// Graph configs that are wrong in the ways a damaged or hostile file can be: each refused
// with a message naming the file and the layer.
TEST(KerasImportErrors, BrokenGraphConfigsAreRefusedNamingTheLayer) {
  const std::string config = [] {
    const ZipArchive zip(fixture("keras3-residual.keras"));
    const std::vector<char> c = zip.read("config.json");
    return std::string(c.begin(), c.end());
  }();
  auto edited = [&](const std::function<void(json&)>& edit) {
    json c = json::parse(config);
    for (json& l : c["config"]["layers"]) edit(l);
    return error_of([&] { build_keras_model(c.dump(), "graph.json"); });
  };
  auto reads = [](json& layer, const std::vector<std::string>& from) {
    json args = json::array();
    for (const std::string& f : from)
      args.push_back({{"class_name", "__keras_tensor__"}, {"config", {{"keras_history", {f, 0, 0}}}}});
    layer["inbound_nodes"] = json::array({{{"args", json::array({args})}, {"kwargs", json::object()}}});
  };
  // stem reads shortcut, which reads stem: a cycle.
  std::string msg = edited([&](json& l) { if (l["name"] == "stem") reads(l, {"shortcut"}); });
  EXPECT_MENTIONS(msg, "graph.json");
  EXPECT_MENTIONS(msg, "on a cycle or reads one");
  msg = edited([&](json& l) { if (l["name"] == "join") reads(l, {"branch_a", "nowhere"}); });
  EXPECT_MENTIONS(msg, "layer 'join' reads a layer 'nowhere' it does not define");
  msg = edited([&](json& l) {
    if (l["name"] == "branch_a") l["inbound_nodes"].push_back(l["inbound_nodes"][0]);
  });
  EXPECT_MENTIONS(msg, "layer 'branch_a' is called 2 times (a shared layer)");
  // The join made an Add of two shapes.
  msg = edited([&](json& l) {
    if (l["name"] != "join") return;
    l["class_name"] = "Add";
    reads(l, {"branch_a", "shortcut"});
  });
  EXPECT_MENTIONS(msg, "Add 'join' adds inputs of shapes (14, 14, 3), (14, 14, 6)");
  msg = edited([&](json& l) { if (l["name"] == "join") l["config"]["axis"] = 1; });
  EXPECT_MENTIONS(msg, "Concatenate 'join' joins inputs of shapes");
  msg = edited([&](json& l) { if (l["name"] == "pad") l["config"]["padding"] = json::array({-1, 2}); });
  EXPECT_MENTIONS(msg, "ZeroPadding2D 'pad': padding [-1,2] must hold sizes from 0");
}

TEST(KerasImportErrors, WeightShapeAgainstConfig) {
  const std::string path = edited_tiny(scratch(), [](json& c) { layer_named(c, "conv2d_1")["config"]["filters"] = 3; });
  const std::string msg = error_of([&] { import_keras(path); });
  EXPECT_MENTIONS(msg, "layer 'conv2d_1' weight 'kernel' has shape [3,3,1,2] in the file");
}

TEST(KerasImportErrors, MissingWeightGroup) {
  const std::string path = edited_tiny(scratch(), [](json&) {}, [](H5::H5File& f) { f.unlink("model_weights/dense_1"); });
  EXPECT_MENTIONS(error_of([&] { import_keras(path); }), "no weights for layer 'dense_1'");
}

TEST(KerasImportErrors, KerasOneAndWeightsOnlyFiles) {
  const std::string dir = scratch();
  const std::string old = edited_tiny(dir, [](json&) {}, [](H5::H5File& f) {
    f.removeAttr("keras_version");
    h5::write_string(f, "keras_version", "1.2.2");
  });
  EXPECT_MENTIONS(error_of([&] { import_keras(old); }), "Keras 1.2.2");

  const std::string weights_only = dir + "/weights_only.h5";
  h5::write_atomically(weights_only, [](H5::H5File& f) { h5::write_string_list(f, "layer_names", {"dense"}); });
  EXPECT_MENTIONS(error_of([&] { load_model(weights_only); }), "model.save_weights");
}

}  // namespace
}  // namespace kiln
