// The inspection pictures' numbers (optim/inspect/): confusion matrices and ROC curves against
// cases worked by hand, Grad-CAM's gradient and saliency against finite differences on small
// models (a chain and a residual graph), layer statistics leaving the model as it was, and
// inspect() writing every file as a PNG or CSV that reads back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/io/png_image.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/avg_pool2d.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/global_avg_pool2d.h"
#include "layers/graph.h"
#include "layers/sequential.h"
#include "optim/inspect/confusion.h"
#include "optim/inspect/grad_cam.h"
#include "optim/inspect/inspect.h"
#include "optim/inspect/layer_stats.h"
#include "optim/inspect/model_trace.h"
#include "optim/inspect/roc.h"
#include "optim/train/metrics.h"

namespace kiln {
namespace {

TEST(Confusion, CountsAndRowSharesByHand) {
  // 5 rows, 3 classes: predictions (arg-max) 0, 2, 1, 1, 2 for labels 0, 1, 1, 2, 2.
  const Tensor s = Tensor::from_vector({5, 3}, {0.9f, 0.05f, 0.05f, 0.1f, 0.2f, 0.7f, 0.2f, 0.5f, 0.3f,
                                               0.3f, 0.4f, 0.3f, 0.0f, 0.1f, 0.9f});
  const ConfusionMatrix cm = confusion_matrix(s, {0, 1, 1, 2, 2});
  ASSERT_EQ(cm.classes, 3);
  EXPECT_EQ(cm.counts, (std::vector<int64_t>{1, 0, 0, 0, 1, 1, 0, 1, 1}));
  EXPECT_EQ(cm.correct(), 3);
  EXPECT_EQ(cm.total(), 5);
  EXPECT_DOUBLE_EQ(cm.row_fraction(1, 2), 0.5);
  EXPECT_DOUBLE_EQ(cm.row_fraction(0, 0), 1.0);
  // One sigmoid output: class 1 from 0.5 up.
  const ConfusionMatrix b = confusion_matrix(Tensor::from_vector({4, 1}, {0.2f, 0.5f, 0.7f, 0.49f}), {0, 0, 1, 1});
  EXPECT_EQ(b.counts, (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_THROW(confusion_matrix(s, {0, 1, 1, 2}), std::invalid_argument);  // 4 labels for 5 rows
}

TEST(Roc, CurveAndAreaByHand) {
  // Scores high to low: labels 1, 1, 0, 1, 0, 0 -> points (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1)
  // (2/3,1) (1,1); area 1 - (1/3)(1/3) = 8/9 (one of the 9 positive-negative pairs is misordered).
  const RocCurve r = roc_curve({0.9f, 0.8f, 0.7f, 0.6f, 0.55f, 0.4f}, {1, 1, 0, 1, 0, 0});
  const std::vector<double> fpr = {0, 0, 0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 1}, tpr = {0, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1, 1, 1};
  ASSERT_EQ(r.fpr.size(), fpr.size());
  for (size_t i = 0; i < fpr.size(); ++i) {
    EXPECT_NEAR(r.fpr[i], fpr[i], 1e-12) << i;
    EXPECT_NEAR(r.tpr[i], tpr[i], 1e-12) << i;
  }
  EXPECT_NEAR(r.auc, 8.0 / 9.0, 1e-12);
  EXPECT_EQ(r.positives, 3);
  EXPECT_EQ(r.negatives, 3);
  // Ties enter together: two examples at 0.5, one of each class -> one diagonal step, area 1/2.
  EXPECT_NEAR(roc_curve({0.5f, 0.5f}, {1, 0}).auc, 0.5, 1e-12);
  EXPECT_EQ(roc_curve({0.5f, 0.5f}, {1, 0}).fpr.size(), 2u);
  // On many scores with ties, the curve's area is metrics.h's rank-based AUC.
  std::vector<float> scores;
  std::vector<int32_t> labels;
  for (int i = 0; i < 500; ++i) {
    scores.push_back(static_cast<float>((i * 37) % 50) / 50.0f);
    labels.push_back((i * 13) % 7 < 3);
  }
  EXPECT_NEAR(roc_curve(scores, labels).auc, roc_auc(scores, labels), 1e-12);
  EXPECT_THROW(roc_curve({0.1f, 0.2f}, {1, 1}), std::invalid_argument);  // no negatives
}

// Smooth layers (tanh, average pooling) so that finite differences are exact to O(h^2).
std::shared_ptr<Sequential> smooth_cnn() {
  manual_seed(21);
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 2, .filters = 4, .activation = Activation::Tanh}), "conv1");
  m->add(std::make_shared<AvgPool2D>(), "pool");
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 5, .activation = Activation::Tanh}), "conv2");
  m->add(std::make_shared<Flatten>(), "flatten");
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 4 * 4 * 5, .units = 3, .activation = Activation::Softmax}), "dense");
  return m;
}

std::shared_ptr<Graph> smooth_residual() {
  manual_seed(22);
  auto g = std::make_shared<Graph>();
  g->input("x");
  g->add("stem", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 2, .filters = 4, .activation = Activation::Tanh}), {"x"});
  g->add("conv", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 4, .activation = Activation::Tanh}), {"stem"});
  g->add("sum", std::make_shared<Add>(), {"stem", "conv"});
  g->add("gap", std::make_shared<GlobalAvgPool2D>(), {"sum"});
  g->add("head", std::make_shared<Dense>(DenseOptions{.in_features = 4, .units = 3, .activation = Activation::Softmax}), {"gap"});
  return g;
}

// d(logit k)/d(layer's output), by central differences through trace_layers' replacement.
double numeric_grad(Module& m, const Tensor& x, const std::string& layer, const Tensor& a, int64_t i, int64_t k) {
  NoGradGuard no_grad;
  const double h = 1e-3;
  auto score = [&](double d) {
    Tensor r = a.clone();
    r.data()[i] += static_cast<float>(d);
    return static_cast<double>(trace_layers(m, x, {.replace_layer = layer, .replacement = r, .logits = true}).output.data()[k]);
  };
  return (score(h) - score(-h)) / (2 * h);
}

void check_grad_cam(Module& m, const std::string& layer) {
  m.eval();
  const Tensor x = Tensor::uniform({1, 8, 8, 2}, -1.0f, 1.0f, 5);
  for (int64_t k = 0; k < 3; ++k) {
    const GradCam g = grad_cam(m, x, k, layer);
    ASSERT_EQ(g.layer, layer);
    const int64_t H = g.activation.size(1), W = g.activation.size(2), C = g.activation.size(3);
    for (int64_t i = 0; i < g.activation.numel(); i += 7)
      EXPECT_NEAR(g.gradient.data()[i], numeric_grad(m, x, layer, g.activation, i, k), 2e-3) << layer << " class " << k << " at " << i;
    for (int64_t c = 0; c < C; ++c) {
      double mean = 0;
      for (int64_t p = 0; p < H * W; ++p) mean += g.gradient.data()[p * C + c];
      EXPECT_NEAR(g.weights[static_cast<size_t>(c)], mean / static_cast<double>(H * W), 1e-6);
    }
    for (int64_t p = 0; p < H * W; ++p) {
      double v = 0;
      for (int64_t c = 0; c < C; ++c) v += g.weights[static_cast<size_t>(c)] * g.activation.data()[p * C + c];
      EXPECT_NEAR(g.map.data()[p], std::max(v, 0.0), 1e-5);
    }
  }
  for (const auto& p : m.parameters()) EXPECT_FALSE(p.grad().defined()) << "grad_cam left gradients in the model";
}

TEST(GradCam, GradientMatchesFiniteDifferencesOnAChain) {
  auto m = smooth_cnn();
  EXPECT_EQ(last_conv_layer(*m, Tensor::zeros({1, 8, 8, 2})), "conv2");
  check_grad_cam(*m, "conv2");
  check_grad_cam(*m, "conv1");
}

TEST(GradCam, GradientMatchesFiniteDifferencesThroughAResidualGraph) {
  // A through the shortcut and the branch: both paths' gradients add up.
  auto g = smooth_residual();
  EXPECT_EQ(last_conv_layer(*g, Tensor::zeros({1, 8, 8, 2})), "conv");
  check_grad_cam(*g, "stem");
  check_grad_cam(*g, "conv");
}

TEST(Saliency, InputGradientMatchesFiniteDifferences) {
  auto m = smooth_cnn();
  m->eval();
  const Tensor x = Tensor::uniform({1, 8, 8, 2}, -1.0f, 1.0f, 9);
  const Tensor g = input_gradient(*m, x, 2);
  {
    NoGradGuard no_grad;
    for (int64_t i = 0; i < x.numel(); i += 5) {
      Tensor a = x.clone(), b = x.clone();
      a.data()[i] += 1e-3f;
      b.data()[i] -= 1e-3f;
      const double numeric = (m->forward_logits(a).data()[2] - m->forward_logits(b).data()[2]) / 2e-3;
      EXPECT_NEAR(g.data()[i], numeric, 2e-3) << i;
    }
    EXPECT_THROW(saliency(*m, x, 2), std::invalid_argument);  // no gradients in a no-grad scope
  }
  const Tensor s = saliency(*m, x, 2);
  ASSERT_EQ(s.shape(), (Shape{8, 8}));
  for (int64_t p = 0; p < 64; ++p)
    EXPECT_FLOAT_EQ(s.data()[p], std::max(std::abs(g.data()[p * 2]), std::abs(g.data()[p * 2 + 1])));
  EXPECT_THROW(grad_cam(*m, x, 3), std::invalid_argument);  // 3 classes: 0..2
  EXPECT_THROW(grad_cam(*m, x, 0, "dense"), std::invalid_argument);  // not an image
}

TEST(LayerStats, FiguresWithoutChangingTheModel) {
  manual_seed(3);
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 2, .filters = 4, .activation = Activation::ReLU}), "conv");
  m->add(std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 4}), "bn");
  m->add(std::make_shared<Flatten>(), "flatten");
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 8 * 8 * 4, .units = 3, .activation = Activation::Softmax}), "dense");
  m->eval();
  Batch b;
  b.x = Tensor::uniform({6, 8, 8, 2}, -1.0f, 1.0f, 4);
  b.labels = {0, 1, 2, 0, 1, 2};
  b.y_onehot = one_hot(b.labels, 3);
  b.indices = {0, 1, 2, 3, 4, 5};
  NamedTensors before;
  for (const auto& [n, t] : m->named_parameters()) before.emplace_back(n, t.clone());
  for (const auto& [n, t] : m->named_buffers()) before.emplace_back(n, t.clone());
  const std::vector<LayerStats> s = layer_statistics(*m, b, 0.01);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].name, "conv");
  EXPECT_EQ(s[0].output_shape, (Shape{6, 8, 8, 4}));
  EXPECT_GT(s[0].zero_fraction, 0.1);  // a ReLU output
  EXPECT_EQ(s[2].parameters, 0);
  EXPECT_EQ(s[3].parameters, 8 * 8 * 4 * 3 + 3);
  EXPECT_GT(s[3].grad_norm, 0);
  EXPECT_NEAR(s[3].update_ratio, 0.01 * s[3].grad_norm / s[3].weight_norm, 1e-12);
  EXPECT_FALSE(m->is_training());
  size_t i = 0;
  for (const auto& named : {m->named_parameters(), m->named_buffers()})
    for (const auto& [n, t] : named) {
      const Tensor& was = before[i++].second;
      for (int64_t k = 0; k < t.numel(); ++k) ASSERT_EQ(t.data()[k], was.data()[k]) << n << " changed";
      EXPECT_FALSE(t.grad().defined()) << n << " kept a gradient";
    }
}

TEST(Inspect, WritesEveryPictureAndTable) {
  auto m = smooth_cnn();
  Dataset d;
  d.x = Tensor::uniform({30, 8, 8, 2}, -1.0f, 1.0f, 12);
  for (int i = 0; i < 30; ++i) d.labels.push_back(i % 3);
  d.num_classes = 3;
  d.y_onehot = one_hot(d.labels, 3);
  InspectOptions o;
  o.out_dir = testing::TempDir() + "/kiln_inspect_" + std::to_string(::getpid());
  o.quiet = true;
  o.title = "smooth";
  o.images = {4};
  std::filesystem::remove_all(o.out_dir);
  // Two channels are no picture: the tables and the filters only.
  const InspectResult two = inspect(*m, d, o);
  EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/confusion.png"));
  EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/filters-conv2.png"));
  EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/layer-stats.csv"));
  EXPECT_FALSE(std::filesystem::exists(o.out_dir + "/gradcam-4.png"));
  std::filesystem::remove_all(o.out_dir);
  d.x = Tensor::uniform({30, 8, 8, 1}, -1.0f, 1.0f, 12);
  auto m1 = std::make_shared<Sequential>();
  manual_seed(30);
  m1->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 4, .activation = Activation::ReLU}), "conv");
  m1->add(std::make_shared<GlobalAvgPool2D>(), "gap");
  m1->add(std::make_shared<Dense>(DenseOptions{.in_features = 4, .units = 3, .activation = Activation::Softmax}), "dense");
  const InspectResult r = inspect(*m1, d, o);
  for (const char* f : {"confusion.csv", "confusion.png", "filters-conv.png", "feature-maps-4.png", "gradcam-4.png",
                        "layer-stats.csv"})
    EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/" + f)) << f;
  EXPECT_EQ(r.confusion.total(), 30);
  EXPECT_EQ(r.auc, -1);  // three classes: no ROC
  for (const std::string& f : r.files)
    if (f.size() > 4 && f.substr(f.size() - 4) == ".png") {
      const PngImage p = read_png(f);
      EXPECT_GE(p.width, 100) << f;
      EXPECT_LE(p.width, 4000) << f;
      EXPECT_GE(p.height, 60) << f;
    }
  std::ifstream csv(o.out_dir + "/confusion.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "true,predicted,count,row_fraction");
  std::filesystem::remove_all(o.out_dir);
}

}  // namespace
}  // namespace kiln
