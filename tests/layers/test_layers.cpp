// Modules: registry, names, train/eval, parameter counts of the lab's models, summary().
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "layers/activation.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/sequential.h"
#include "layers/zoo/lab_models.h"

namespace kiln {
namespace {

// Parameter counts computed by hand from the layer shapes, independently of the modules.
int64_t conv_params(int64_t cin, int64_t cout) { return 3 * 3 * cin * cout + cout; }
int64_t dense_params(int64_t in, int64_t out) { return in * out + out; }

TEST(LabModels, Task1Has4266TrainableParameters) {
  auto m = task1_model();
  EXPECT_EQ(m->count_trainable(), conv_params(1, 4) + conv_params(4, 8) + dense_params(7 * 7 * 8, 10));
  EXPECT_EQ(m->count_trainable(), 4266);
  EXPECT_EQ(m->count_non_trainable(), 0);
}

TEST(LabModels, Task2CountsMatchHandCount) {
  auto m = task2_model();
  const int64_t convs = conv_params(1, 64) + conv_params(64, 64) + conv_params(64, 128) +
                        conv_params(128, 128) + 2 * conv_params(128, 128);
  const int64_t bn_channels = 64 + 64 + 128 + 128 + 128 + 128;
  const int64_t dense = dense_params(3 * 3 * 128, 512) + dense_params(512, 10);
  EXPECT_EQ(m->count_trainable(), convs + 2 * bn_channels + dense);
  EXPECT_EQ(m->count_trainable(), 1150922);
  EXPECT_EQ(m->count_non_trainable(), 2 * bn_channels);
  EXPECT_EQ(m->count_non_trainable(), 1280);
}

TEST(LabModels, Task3CountsMatchHandCount) {
  auto m = task3_model();
  const int64_t convs = conv_params(3, 128) + 3 * conv_params(128, 128) + conv_params(128, 256) +
                        conv_params(256, 256);
  const int64_t bn_channels = 4 * 128 + 2 * 256;
  const int64_t dense = dense_params(4 * 4 * 256, 256) + dense_params(256, 256) + dense_params(256, 2);
  EXPECT_EQ(m->count_trainable(), convs + 2 * bn_channels + dense);
  EXPECT_EQ(m->count_trainable(), 2448770);
  EXPECT_EQ(m->count_non_trainable(), 2048);
  // On 96x96 input the first Dense sees 12*12*256 = 36,864 features.
  auto big = task3_model(96, 96, 3);
  EXPECT_EQ(big->count_trainable() - m->count_trainable(), (36864 - 4096) * 256);
}

TEST(Module, DottedNamesFollowRegistration) {
  auto m = task2_model();
  const auto params = m->named_parameters();
  ASSERT_FALSE(params.empty());
  EXPECT_EQ(params[0].first, "block1.conv2d.kernel");
  EXPECT_EQ(params[1].first, "block1.conv2d.bias");
  EXPECT_EQ(params[2].first, "block1.batch_normalization.gamma");
  EXPECT_EQ(params[4].first, "block1.conv2d_1.kernel");
  const auto buffers = m->named_buffers();
  EXPECT_EQ(buffers[0].first, "block1.batch_normalization.moving_mean");
  EXPECT_EQ(buffers[1].first, "block1.batch_normalization.moving_variance");
  EXPECT_EQ(params.back().first, "dense_1.bias");
}

TEST(Module, ParameterHandlesAreTheRegistry) {
  Dense d({.in_features = 3, .units = 2, .seed = 7});
  d.kernel() = Tensor::ones({3, 2}).set_requires_grad();  // assign through the handle
  const auto params = d.named_parameters();
  EXPECT_EQ(params[0].first, "kernel");
  EXPECT_EQ(params[0].second.impl(), d.kernel().impl());
  EXPECT_FLOAT_EQ(params[0].second.at({2, 1}), 1.0f);
}

TEST(Module, TrainEvalRecurses) {
  auto m = task2_model();
  m->eval();
  for (auto& [name, child] : m->named_children()) EXPECT_FALSE(child->is_training()) << name;
  EXPECT_FALSE((*m)[0].named_children()[0].second->is_training());
  m->train();
  EXPECT_TRUE((*m)[0].named_children()[1].second->is_training());
}

TEST(Module, GlorotUniformBoundsAndSeeds) {
  Conv2D a({.in_channels = 8, .filters = 16, .seed = 3});
  Conv2D b({.in_channels = 8, .filters = 16, .seed = 3});
  Conv2D c({.in_channels = 8, .filters = 16, .seed = 4});
  const float limit = std::sqrt(6.0f / (9 * 8 + 9 * 16));
  float lo = 1, hi = -1;
  for (float v : a.kernel().to_vector()) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GE(lo, -limit);
  EXPECT_LE(hi, limit);
  EXPECT_LT(lo, -0.9f * limit);  // the range is used, not a narrower one
  EXPECT_GT(hi, 0.9f * limit);
  EXPECT_EQ(a.kernel().to_vector(), b.kernel().to_vector());
  EXPECT_NE(a.kernel().to_vector(), c.kernel().to_vector());
  for (float v : a.bias().to_vector()) EXPECT_EQ(v, 0.0f);
}

TEST(Module, ManualSeedReproducesAModel) {
  manual_seed(11);
  auto a = task1_model();
  manual_seed(11);
  auto b = task1_model();
  EXPECT_EQ(a->named_parameters()[0].second.to_vector(), b->named_parameters()[0].second.to_vector());
}

TEST(Module, BatchNormUsesBatchStatsInTrainingAndMovingStatsInEval) {
  BatchNorm2d bn({.channels = 2});
  Tensor x = Tensor::from_vector({4, 2}, {1, 10, 3, 10, 5, 10, 7, 10});
  Tensor y = bn(x);
  EXPECT_NEAR(y.at({0, 0}), (1 - 4) / std::sqrt(5.0f + 1e-3f), 1e-5);
  EXPECT_NEAR(bn.moving_mean().at({0}), 0.01f * 4, 1e-6);          // 0.99 * 0 + 0.01 * 4
  EXPECT_NEAR(bn.moving_variance().at({0}), 0.99f + 0.01f * 5, 1e-6);  // biased variance 5
  bn.eval();
  Tensor z = bn(x);
  EXPECT_NEAR(z.at({0, 0}), (1 - 0.04f) / std::sqrt(1.04f + 1e-3f), 1e-5);
  EXPECT_NEAR(bn.moving_mean().at({0}), 0.04f, 1e-6);  // unchanged in eval
}

// Sequential runs a BatchNormalization followed by a ReLU as one op (batch_norm_relu): the
// outputs, the gradients of x, gamma and beta and the moving statistics must be those of the
// two layers run apart, in training and in inference.
TEST(Module, SequentialFusesBatchNormAndReluWithTheSameResults) {
  const int64_t C = 3;
  const Tensor x0 = Tensor::uniform({2, 4, 5, C}, -2.0f, 2.0f, 21);
  const Tensor dout = Tensor::uniform({2, 4, 5, C}, -1.0f, 1.0f, 22);
  auto make = [&] {
    auto bn = std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = C});
    const std::vector<float> gamma = Tensor::uniform({C}, 0.5f, 1.5f, 23).to_vector();
    const std::vector<float> beta = Tensor::uniform({C}, -0.5f, 0.5f, 24).to_vector();
    std::copy(gamma.begin(), gamma.end(), bn->gamma().data());
    std::copy(beta.begin(), beta.end(), bn->beta().data());
    return bn;
  };
  for (const bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "inference");
    auto fused_bn = make(), apart_bn = make();
    Sequential fused;
    fused.add(fused_bn).add(ReLU());
    if (!training) {
      fused.eval();
      apart_bn->eval();
    }
    Tensor xa = x0.clone().set_requires_grad(), xb = x0.clone().set_requires_grad();
    Tensor ya = fused(xa);
    Tensor yb = relu((*apart_bn)(xb));
    const std::vector<float> va = ya.to_vector(), vb = yb.to_vector();
    ASSERT_EQ(va.size(), vb.size());
    int64_t zeros = 0;
    for (size_t i = 0; i < va.size(); ++i) {
      EXPECT_NEAR(va[i], vb[i], 1e-6f) << i;
      zeros += vb[i] == 0.0f;
    }
    EXPECT_GT(zeros, 0);  // the ReLU cuts somewhere, so its mask is exercised
    sum(mul(ya, dout)).backward();
    sum(mul(yb, dout)).backward();
    auto near = [](const Tensor& a, const Tensor& b, const char* what) {
      const std::vector<float> u = a.to_vector(), v = b.to_vector();
      ASSERT_EQ(u.size(), v.size()) << what;
      for (size_t i = 0; i < u.size(); ++i) EXPECT_NEAR(u[i], v[i], 1e-5f * (1.0f + std::fabs(v[i]))) << what << " " << i;
    };
    near(xa.grad(), xb.grad(), "dx");
    near(fused_bn->gamma().grad(), apart_bn->gamma().grad(), "dgamma");
    near(fused_bn->beta().grad(), apart_bn->beta().grad(), "dbeta");
    near(fused_bn->moving_mean(), apart_bn->moving_mean(), "moving mean");
    near(fused_bn->moving_variance(), apart_bn->moving_variance(), "moving variance");
  }
}

// A Conv2D with activation "relu" runs conv2d_relu: the same output and gradients (x, kernel,
// bias) as relu applied to its linear output, for a form with a direct kernel (4 filters)
// and one through sgemm (32 filters), stride 1 and 2.
TEST(Module, Conv2DWithReluMatchesReluOfTheLinearConvolution) {
  for (const auto& [filters, stride] : {std::pair<int64_t, int>{4, 1}, {32, 1}, {8, 2}}) {
    SCOPED_TRACE("filters " + std::to_string(filters) + ", stride " + std::to_string(stride));
    Conv2D conv({.in_channels = 3, .filters = filters, .stride = stride, .activation = Activation::ReLU, .seed = 5});
    std::vector<float> bias = Tensor::uniform({filters}, -0.2f, 0.2f, 6).to_vector();
    std::copy(bias.begin(), bias.end(), conv.named_parameters()[1].second.data());
    const Tensor x0 = Tensor::uniform({2, 7, 6, 3}, -1.0f, 1.0f, 7);
    // One pass: output, dx and the parameters' gradients, then the gradients are dropped.
    auto run = [&](bool fused) {
      Tensor x = x0.clone().set_requires_grad();
      Tensor y = fused ? conv(x) : relu(conv.forward_logits(x));
      const Tensor dout = Tensor::uniform(y.shape(), -1.0f, 1.0f, 8);
      sum(mul(y, dout)).backward();
      std::vector<std::vector<float>> got = {y.to_vector(), x.grad().to_vector()};
      for (auto& [name, p] : conv.named_parameters()) {
        got.push_back(p.grad().to_vector());
        p.zero_grad();
      }
      return got;
    };
    const auto fused = run(true), apart = run(false);
    int64_t zeros = 0;
    for (float v : apart[0]) zeros += v == 0.0f;
    EXPECT_GT(zeros, 0);
    const char* what[] = {"output", "dx", "dkernel", "dbias"};
    ASSERT_EQ(fused.size(), 4u);
    for (size_t k = 0; k < 4; ++k) {
      ASSERT_EQ(fused[k].size(), apart[k].size()) << what[k];
      for (size_t i = 0; i < fused[k].size(); ++i)
        EXPECT_NEAR(fused[k][i], apart[k][i], 1e-5f * (1.0f + std::fabs(apart[k][i]))) << what[k] << " " << i;
    }
  }
}

TEST(Module, DropoutOnlyInTrainingAndScales) {
  Dropout d(0.5f, 9);
  Tensor x = Tensor::ones({1000});
  Tensor y = d(x);
  int zeros = 0;
  for (float v : y.to_vector()) {
    EXPECT_TRUE(v == 0.0f || v == 2.0f);
    zeros += v == 0.0f;
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  d.eval();
  EXPECT_EQ(d(x).to_vector(), x.to_vector());
}

TEST(Module, RegularizationLossSumsKernelPenalties) {
  auto block = conv_block(2, 1, 2, 0.5f);
  const auto params = block->named_parameters();
  double expected = 0;
  for (auto& [name, t] : params)
    if (name.find("kernel") != std::string::npos)
      for (float v : t.to_vector()) expected += 0.5 * v * v;
  EXPECT_NEAR(block->regularization_loss().item(), expected, 1e-5);
}

TEST(Summary, ListsLayersShapesAndTotals) {
  auto m = task1_model();
  const std::string s = summary(*m, {28, 28, 1}, "task1");
  EXPECT_NE(s.find("(None, 28, 28, 4)"), std::string::npos) << s;
  EXPECT_NE(s.find("(None, 392)"), std::string::npos) << s;
  EXPECT_NE(s.find("Trainable params: 4,266"), std::string::npos) << s;
  EXPECT_NE(s.find("Non-trainable params: 0"), std::string::npos) << s;
  const std::string s2 = summary(*task2_model(), {28, 28, 1});
  EXPECT_NE(s2.find("Trainable params: 1,150,922"), std::string::npos) << s2;
  EXPECT_NE(s2.find("Non-trainable params: 1,280"), std::string::npos) << s2;
  EXPECT_NE(s2.find("block3.max_pooling2d (MaxPooling2D 2x2)"), std::string::npos) << s2;
}

TEST(Layers, BadShapesNameTheLayerAndShapes) {
  Conv2D conv({.in_channels = 3, .filters = 4, .seed = 1});
  try {
    conv(Tensor::zeros({2, 8, 8, 1}));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("conv2d"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2,8,8,1]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3,3,3,4]"), std::string::npos) << msg;
  }
  EXPECT_THROW(Dense({.in_features = 0, .units = 2}), std::invalid_argument);
  EXPECT_THROW(Dropout(1.0f), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
