// ONNX export (layers/io/onnx/onnx_export.h): every file kiln writes passes the ONNX
// project's own checker and strict shape inference (libonnx), and reading it back gives
// every prediction of the model that was written, bit for bit. The independent check of the
// files' meaning is tests/fixtures/onnx_numpy_oracle.py (an evaluator written from the ONNX
// operator specification, in numpy), run by hand: see README "Model formats".
#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "core/autograd.h"
#include "core/io/file_error.h"
#include "tests/layers/file_error_of.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/avg_pool2d.h"
#include "layers/batch_norm2d.h"
#include "layers/concatenate.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/global_avg_pool2d.h"
#include "layers/graph.h"
#include "layers/io/model_file.h"
#include "layers/io/onnx/onnx_export.h"
#include "layers/io/onnx/onnx_import.h"
#include "layers/max_pool2d.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "layers/zero_padding2d.h"
#include "layers/zoo/lab_models.h"

namespace kiln {
namespace {

// Batch-norm statistics and scales away from 1 and 0, so that a wrong channel order shows.
void perturb_batch_norms(Module& m, uint64_t seed) {
  for (auto& [name, t] : m.named_buffers()) {
    Tensor v = t;
    v.copy_(Tensor::uniform(t.shape(), name.find("variance") != std::string::npos ? 0.5f : -0.5f, 1.5f, seed++));
  }
  for (auto& [name, t] : m.named_parameters()) {
    if (name.find("gamma") == std::string::npos && name.find("beta") == std::string::npos) continue;
    Tensor v = t;
    v.copy_(Tensor::uniform(t.shape(), 0.5f, 1.5f, seed++));
  }
}

// Exports model, runs the ONNX checker on the bytes, imports them, and expects the same
// outputs bit for bit on a seeded batch of 3. Returns the imported model.
LoadedModel round_trip(Module& model, const Shape& input_shape, const std::string& what) {
  model.eval();
  const std::string bytes = export_onnx_bytes(model, input_shape, what, what + ".onnx");
  onnx::ModelProto proto;
  EXPECT_TRUE(proto.ParseFromString(bytes)) << what;
  try {
    onnx::checker::check_model(proto);
    // ONNX's own shape inference, strict: every node's output shape follows from its inputs
    // and attributes, and must agree with the output shape the file declares.
    onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict=*/1, /*data_prop=*/true));
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": the ONNX checker refuses the file: " << e.what();
  }
  EXPECT_EQ(proto.opset_import(0).version(), 13);
  const LoadedModel back = import_onnx_bytes(bytes, what + ".onnx");
  EXPECT_EQ(back.input_shape, input_shape) << what;
  Shape batch = {3};
  batch.insert(batch.end(), input_shape.begin(), input_shape.end());
  const Tensor x = Tensor::uniform(batch, -1.0f, 2.0f, 7);
  NoGradGuard no_grad;
  const Tensor want = model.forward(x), got = back.model->forward(x);
  EXPECT_EQ(got.shape(), want.shape()) << what;
  if (got.shape() == want.shape()) {
    int64_t differ = 0;
    for (int64_t i = 0; i < want.numel(); ++i) differ += got.data()[i] != want.data()[i];
    EXPECT_EQ(differ, 0) << what << ": " << differ << " of " << want.numel() << " outputs differ after the round trip";
  }
  return back;
}

int count_type(const LoadedModel& m, const std::string& type) {
  int n = 0;
  for (const auto& node : dynamic_cast<Graph&>(*m.model).nodes()) n += node.module->type_name() == type;
  return n;
}

TEST(OnnxExport, LabModelsRoundTripBitForBit) {
  manual_seed(11);
  auto t1 = task1_model();
  auto t2 = task2_model();
  auto t3 = task3_model(32, 32, 3);
  perturb_batch_norms(*t2, 100);
  perturb_batch_norms(*t3, 200);
  for (auto& [model, shape, name] : std::vector<std::tuple<std::shared_ptr<Sequential>, Shape, std::string>>{
           {t1, {28, 28, 1}, "task1"}, {t2, {28, 28, 1}, "task2"}, {t3, {32, 32, 3}, "task3"}}) {
    const LoadedModel back = round_trip(*model, shape, name);
    // The exporter's transposes to NCHW and back only relabel axes in kiln: no Permute is left.
    EXPECT_EQ(count_type(back, "Permute"), 0) << name;
    EXPECT_EQ(count_type(back, "Conv2D"), name == "task1" ? 2 : 6) << name;
    EXPECT_EQ(back.model->count_trainable(), model->count_trainable()) << name;
  }
}

// A graph with a layer of every kind the exporter writes.
std::shared_ptr<Graph> every_layer_graph() {
  manual_seed(5);
  auto g = std::make_shared<Graph>();
  g->input("image");  // [N,9,9,3]
  g->add("pad", std::make_shared<ZeroPadding2D>(ZeroPadding2DOptions{1, 0, 2, 1}), {"image"});  // 10x12
  g->add("stem", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 3, .filters = 6, .stride = 2,
                                                        .activation = Activation::ReLU}), {"pad"});  // 5x6
  g->add("bn", std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 6}), {"stem"});
  g->add("branch", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 6, .filters = 6, .kernel = 1,
                                                          .activation = Activation::Tanh}), {"bn"});
  g->add("sum", std::make_shared<Add>(), {"bn", "branch"});
  g->add("avg", std::make_shared<AvgPool2D>(AvgPool2DOptions{.pool = 2, .stride = 2, .padding = Padding::Same}), {"sum"});
  g->add("max", std::make_shared<MaxPool2D>(MaxPool2DOptions{.pool = 3, .stride = 2, .padding = Padding::Same}), {"sum"});
  g->add("joined", std::make_shared<Concatenate>(), {"avg", "max"});  // 3x3x12
  g->add("gap", std::make_shared<GlobalAvgPool2D>(), {"joined"});
  g->add("perm", std::make_shared<Permute>(std::vector<int64_t>{3, 1, 2}), {"joined"});  // 12x3x3
  g->add("reshaped", std::make_shared<Reshape>(Shape{12, 9}), {"perm"});
  g->add("flat", std::make_shared<Flatten>(), {"reshaped"});
  g->add("drop", std::make_shared<Dropout>(0.2f), {"flat"});
  g->add("fc", std::make_shared<Dense>(DenseOptions{.in_features = 108, .units = 12, .activation = Activation::Sigmoid}), {"drop"});
  g->add("both", std::make_shared<Concatenate>(), {"fc", "gap"});
  g->add("head", std::make_shared<Dense>(DenseOptions{.in_features = 24, .units = 4}), {"both"});
  g->add("softmax", Softmax(), {"head"});
  perturb_batch_norms(*g, 300);
  return g;
}

TEST(OnnxExport, EveryLayerKindRoundTripsBitForBit) {
  auto g = every_layer_graph();
  const LoadedModel back = round_trip(*g, {9, 9, 3}, "every_layer");
  EXPECT_TRUE(back.model->ends_in_softmax());
}

TEST(OnnxExport, KerasChannelsFirstModelsKeepTheirAxisOrder) {
  // Keras files whose layers are channels_first: the model takes (1, 28, 28) and kiln's import
  // holds Permutes; the exported file takes the same input.
  for (const char* f : {"keras2-residual-cf.h5", "keras2-tiny-cf.h5", "keras3-residual.keras"}) {
    const LoadedModel m = load_model(std::string(KILN_FIXTURE_DIR) + "/keras/" + f);
    round_trip(*m.model, m.input_shape, f);
  }
}

TEST(OnnxExport, FilesAreWrittenWholeOrNotAtAll) {
  const std::string path = testing::TempDir() + "/kiln_onnx_export_" + std::to_string(::getpid()) + ".onnx";
  std::filesystem::remove(path);
  auto t1 = task1_model();
  export_onnx(path, *t1, {28, 28, 1}, "task1");
  const LoadedModel back = load_model(path);  // by content
  EXPECT_EQ(back.format, "onnx");
  EXPECT_EQ(back.name, "task1");
  EXPECT_NE(back.producer.find("kiln"), std::string::npos) << back.producer;
  const auto size = std::filesystem::file_size(path);

  // A module ONNX has no counterpart for: refused naming it, the existing file untouched.
  struct Doubler : Module {
    Tensor forward(const Tensor& x) override { return x; }
    std::string type_name() const override { return "Doubler"; }
  };
  auto seq = std::make_shared<Sequential>();
  seq->add(std::make_shared<Flatten>());
  seq->add(std::make_shared<Doubler>(), "mine");
  const std::string e = error_of([&] { export_onnx(path, *seq, {4, 4, 1}); });
  EXPECT_NE(e.find(path + ": cannot export module 'mine' of type Doubler to ONNX"), std::string::npos) << e;
  EXPECT_EQ(std::filesystem::file_size(path), size);
  // A model that does not run on the stated input.
  const std::string e2 = error_of([&] { export_onnx(path, *t1, {28, 28, 3}); });
  EXPECT_NE(e2.find("does not run on input [28,28,3]: conv2d"), std::string::npos) << e2;
  EXPECT_EQ(std::filesystem::file_size(path), size);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kiln
