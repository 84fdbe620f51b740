// Graph models (layers/graph.h): the merge layers' forward and errors, a residual network
// written as a Graph training bit for bit like the same network written as a Module subclass
// (on real MNIST rows), summary's "Connected to" column, model-file round trips, and the
// construction errors a hand-written or hostile graph gets.
#include "layers/graph.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/autograd.h"
#include "core/io/h5_io.h"
#include "core/ops/ops.h"
#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/batch_norm2d.h"
#include "layers/concatenate.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/global_avg_pool2d.h"
#include "layers/io/model_file.h"
#include "layers/max_pool2d.h"
#include "layers/sequential.h"
#include "layers/zero_padding2d.h"
#include "optim/adam.h"
#include "optim/train/fit.h"
#include "tests/optim/residual_net.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing_models::ResidualNet;
using testing_models::expect_same_state;
using testing_models::train_rows;

std::shared_ptr<Module> relu_layer() { return std::make_shared<ActivationLayer>(Activation::ReLU); }

// The residual CNN of tests/optim/residual_net.h as a Graph. Both construct their layers
// in the same order, so the same seed gives the same initial weights.
std::shared_ptr<Graph> residual_graph() {
  auto g = std::make_shared<Graph>();
  g->input("image");
  auto stem = std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 8});
  auto stem_bn = std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 8});
  auto conv = std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 8, .filters = 8});
  auto bn = std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 8});
  auto pool = std::make_shared<MaxPool2D>();
  auto flatten = std::make_shared<Flatten>();
  auto head = std::make_shared<Dense>(DenseOptions{.in_features = 14 * 14 * 8, .units = 10});
  g->add("stem", stem, {"image"});
  g->add("stem_bn", stem_bn, {"stem"});
  g->add("stem_relu", relu_layer(), {"stem_bn"});
  g->add("conv", conv, {"stem_relu"});
  g->add("bn", bn, {"conv"});
  g->add("sum", std::make_shared<Add>(), {"stem_relu", "bn"});  // the shortcut joins here
  g->add("sum_relu", relu_layer(), {"sum"});
  g->add("pool", pool, {"sum_relu"});
  g->add("flatten", flatten, {"pool"});
  g->add("head", head, {"flatten"});
  return g;
}

TEST(Graph, AResidualGraphTrainsBitForBitLikeTheSameNetworkWrittenAsAModule) {
  manual_seed(11);
  auto by_hand = std::make_shared<ResidualNet>();
  manual_seed(11);
  auto graph = residual_graph();
  expect_same_state(*by_hand, *graph);

  constexpr int64_t kEpochs = 3;
  const FitOptions o{.epochs = kEpochs, .batch_size = 32, .seed = 5, .quiet = true};
  Adam adam_hand(by_hand->named_parameters(), {});
  Adam adam_graph(graph->named_parameters(), {});
  const History h_hand = fit(*by_hand, adam_hand, train_rows(), o);
  const History h_graph = fit(*graph, adam_graph, train_rows(), o);
  for (int64_t e = 0; e < kEpochs; ++e) {
    EXPECT_EQ(h_hand.epochs[static_cast<size_t>(e)].loss, h_graph.epochs[static_cast<size_t>(e)].loss) << "epoch " << e + 1;
    EXPECT_EQ(h_hand.epochs[static_cast<size_t>(e)].accuracy, h_graph.epochs[static_cast<size_t>(e)].accuracy);
  }
  expect_same_state(*by_hand, *graph);
  // It learned (training-mode figures: 18 steps leave the moving batch-norm statistics,
  // momentum 0.99, near their initial values, so inference-mode accuracy says little yet).
  EXPECT_LT(h_graph.epochs.back().loss, h_graph.epochs.front().loss);
  EXPECT_GT(h_graph.epochs.back().accuracy, 0.5) << "first epoch " << h_graph.epochs.front().accuracy;
}

TEST(Graph, AddAndConcatenateJoinTheirInputs) {
  const Tensor a = Tensor::normal({2, 3, 3, 2}, 0.0f, 1.0f, 1);
  const Tensor b = Tensor::normal({2, 3, 3, 2}, 0.0f, 1.0f, 2);
  const Tensor c = Tensor::normal({2, 3, 3, 1}, 0.0f, 1.0f, 3);
  const Tensor s = Add().forward_many({a, b, a});
  for (int64_t i = 0; i < s.numel(); ++i) EXPECT_FLOAT_EQ(s.data()[i], 2 * a.data()[i] + b.data()[i]);
  const Tensor j = Concatenate().forward_many({a, c});
  ASSERT_EQ(j.shape(), (Shape{2, 3, 3, 3}));
  for (int64_t p = 0; p < 2 * 3 * 3; ++p) {  // every pixel: a's two channels, then c's one
    EXPECT_EQ(j.data()[p * 3 + 0], a.data()[p * 2 + 0]);
    EXPECT_EQ(j.data()[p * 3 + 1], a.data()[p * 2 + 1]);
    EXPECT_EQ(j.data()[p * 3 + 2], c.data()[p]);
  }
  const Tensor g = GlobalAvgPool2D().forward(a);
  ASSERT_EQ(g.shape(), (Shape{2, 2}));
  double m = 0;
  for (int64_t p = 0; p < 9; ++p) m += a.data()[p * 2 + 1];
  EXPECT_NEAR(g.data()[1], m / 9, 1e-6);
  const Tensor z = ZeroPadding2D({.top = 1, .bottom = 0, .left = 2, .right = 1}).forward(c);
  ASSERT_EQ(z.shape(), (Shape{2, 4, 6, 1}));
  EXPECT_EQ(z.data()[0], 0.0f);
  EXPECT_EQ(z.data()[(1 * 6 + 2)], c.data()[0]);  // image 0, row 1, column 2 holds c's (0, 0)

  try {
    Add().forward_many({a, c});
    FAIL() << "Add accepted two shapes";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2,3,3,2], [2,3,3,1]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Add().forward(a), std::invalid_argument);
  try {
    Concatenate(-1).forward_many({a, Tensor::zeros({2, 4, 3, 1})});
    FAIL() << "Concatenate accepted mismatched heights";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("concat"), std::string::npos) << e.what();
  }
}

TEST(Graph, SummaryShowsWhatFeedsEachNode) {
  manual_seed(3);
  auto g = residual_graph();
  const std::string s = summary(*g, {28, 28, 1}, "residual");
  // The input row, the join with both its inputs, and the totals.
  EXPECT_NE(s.find("Connected to"), std::string::npos) << s;
  EXPECT_NE(s.find("image (InputLayer)"), std::string::npos) << s;
  const size_t sum_row = s.find("sum (Add)");
  ASSERT_NE(sum_row, std::string::npos) << s;
  const std::string line = s.substr(sum_row, s.find('\n', sum_row) - sum_row);
  EXPECT_NE(line.find("(None, 28, 28, 8)"), std::string::npos) << line;
  EXPECT_NE(line.find("stem_relu, bn"), std::string::npos) << line;
  EXPECT_NE(s.find("Total params: " + std::string("16,418")), std::string::npos) << s;
  // A Sequential keeps its table without the column.
  Sequential seq;
  seq.add(std::make_shared<Flatten>());
  EXPECT_EQ(summary(seq, {2, 2, 1}).find("Connected to"), std::string::npos);
}

fs::path temp_dir() {
  const fs::path dir = fs::temp_directory_path() / ("kiln_graph_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// A branched graph with every new layer: a padded stem, two branches joined by channels, a
// residual add, global pooling and a softmax head.
std::shared_ptr<Graph> branched_graph() {
  auto g = std::make_shared<Graph>();
  g->input("x");
  g->add("pad", std::make_shared<ZeroPadding2D>(ZeroPadding2DOptions{.top = 1, .bottom = 1, .left = 1, .right = 1}), {"x"});
  g->add("stem", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 4, .stride = 2, .padding = Padding::Valid}), {"pad"});
  g->add("left", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 2, .kernel = 1}), {"stem"});
  g->add("right", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 2, .activation = Activation::ReLU}), {"stem"});
  g->add("join", std::make_shared<Concatenate>(), {"left", "right"});
  g->add("sum", std::make_shared<Add>(), {"join", "stem"});
  g->add("bn", std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 4}), {"sum"});
  g->add("gap", std::make_shared<GlobalAvgPool2D>(), {"bn"});
  g->add("head", std::make_shared<Dense>(DenseOptions{.in_features = 4, .units = 3, .activation = Activation::Softmax}), {"gap"});
  return g;
}

TEST(Graph, SavesAndLoadsWithEveryPredictionKept) {
  manual_seed(21);
  auto g = branched_graph();
  // Move the batch-norm statistics off their initial values so the buffers are tested too.
  const Tensor x = Tensor::normal({6, 9, 9, 1}, 0.0f, 1.0f, 8);
  g->train();
  g->forward(x);
  g->eval();
  const Tensor before = g->forward(x);
  EXPECT_TRUE(g->ends_in_softmax());

  const std::string path = (temp_dir() / "branched.h5").string();
  save_model(path, *g, {9, 9, 1}, "branched");
  const LoadedModel m = load_model(path);
  auto* loaded = dynamic_cast<Graph*>(m.model.get());
  ASSERT_NE(loaded, nullptr) << "a saved Graph loads as a Graph";
  EXPECT_EQ(loaded->output_name(), "head");
  ASSERT_EQ(loaded->nodes().size(), g->nodes().size());
  EXPECT_EQ(loaded->nodes()[5].inputs, (std::vector<std::string>{"join", "stem"}));
  const Tensor after = loaded->forward(x);
  ASSERT_EQ(after.shape(), before.shape());
  EXPECT_EQ(std::memcmp(after.data(), before.data(), sizeof(float) * before.numel()), 0);
  fs::remove_all(temp_dir());
}

// A kiln model file whose architecture attribute is replaced by `arch` (the weights of the
// branched graph stay), and the error loading it gives.
std::string load_error_with_architecture(const std::string& arch) {
  manual_seed(21);
  auto g = branched_graph();
  const std::string path = (temp_dir() / "edited.h5").string();
  save_model(path, *g, {9, 9, 1}, "branched");
  {
    H5::H5File f(path, H5F_ACC_RDWR);
    f.removeAttr("architecture");
    h5::write_string(f, "architecture", arch);
  }
  try {
    load_model(path);
  } catch (const FileError& e) {
    fs::remove_all(temp_dir());
    return e.what();
  }
  fs::remove_all(temp_dir());
  return "(loaded)";
}

std::string two_node_graph(const std::string& first_input, const std::string& second_input, const std::string& output) {
  return R"({"name": "g", "input_shape": [9, 9, 1], "model": {"name": "g", "type": "Graph", "inputs": ["x"], "output": ")" +
         output + R"(", "nodes": [
      {"name": "a", "inputs": [")" + first_input + R"("], "module": {"name": "a", "type": "Flatten", "version": 1}},
      {"name": "b", "inputs": [")" + second_input + R"("], "module": {"name": "b", "type": "Flatten", "version": 1}}]}})";
}

TEST(Graph, AHostileArchitectureIsRefusedNamingTheNode) {
  // A cycle: a reads b, b reads a. Each node may only read what comes before it.
  std::string e = load_error_with_architecture(two_node_graph("b", "a", "b"));
  EXPECT_NE(e.find("node 'a' takes 'b', which is neither an input nor a node added before it"), std::string::npos) << e;
  // A dangling input.
  e = load_error_with_architecture(two_node_graph("x", "nowhere", "b"));
  EXPECT_NE(e.find("node 'b' takes 'nowhere'"), std::string::npos) << e;
  // An output that is no node.
  e = load_error_with_architecture(two_node_graph("x", "a", "x"));
  EXPECT_NE(e.find("output 'x' is not a node"), std::string::npos) << e;
  // A node that does not fit what it reads: the model runs, and the error names the node.
  manual_seed(1);
  Graph g;
  g.input("x");
  g.add("conv", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 3, .filters = 2}), {"x"});
  try {
    g.forward(Tensor::zeros({1, 4, 4, 1}));
    FAIL() << "a 1-channel image went into a 3-channel convolution";
  } catch (const std::invalid_argument& ex) {
    EXPECT_NE(std::string(ex.what()).find("node 'conv' (Conv2D)"), std::string::npos) << ex.what();
  }
}

TEST(Graph, ConstructionErrorsSayWhatIsWrong) {
  auto expect_error = [](const std::function<void()>& f, const std::string& part) {
    try {
      f();
      FAIL() << "no error; expected one containing: " << part;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  Graph g;
  expect_error([&] { g.add("a", std::make_shared<Flatten>(), {"x"}); }, "call input() first");
  g.input("x");
  expect_error([&] { g.input("x"); }, "the name 'x' is taken");
  auto flat = std::make_shared<Flatten>();
  g.add("a", flat, {"x"});
  expect_error([&] { g.add("b", flat, {"x"}); }, "reuses the module of node 'a'");
  expect_error([&] { g.add("a", std::make_shared<Flatten>(), {"x"}); }, "node 'a': the name is taken");
  expect_error([&] { g.add("c", std::make_shared<Add>(), {"x"}); }, "joins two or more inputs, got 'x'");
  expect_error([&] { g.add("d", std::make_shared<Flatten>(), {"x", "a"}); }, "takes one input, got 'x', 'a'");
  expect_error([&] { g.add("e", std::make_shared<Flatten>(), {}); }, "takes no input");
  expect_error([&] { g.input("late"); }, "before the first node");
  expect_error([&] { g.forward_many({Tensor::zeros({1, 2}), Tensor::zeros({1, 2})}); }, "takes 1 input(s) ('x'), got 2");
}

TEST(Graph, TwoInputsAndABranchNotOnTheWayToTheOutput) {
  Graph g;
  g.input("a").input("b");
  g.add("sum", std::make_shared<Add>(), {"a", "b"});
  g.add("unused", std::make_shared<Flatten>(), {"a"});
  g.output("sum");
  EXPECT_TRUE(g.joins_inputs());
  const Tensor a = Tensor::ones({1, 2}), b = Tensor::full({1, 2}, 2.0f);
  const auto values = g.run_all({a, b});
  ASSERT_EQ(values.size(), 3u);  // a, b, sum: "unused" does not run
  EXPECT_EQ(values[2].first, "sum");
  EXPECT_EQ(g.forward_many({a, b}).data()[1], 3.0f);
  EXPECT_THROW(g.forward(a), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
