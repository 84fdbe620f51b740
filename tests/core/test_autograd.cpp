// The autograd engine's contract (core/tensor.h, core/autograd.h): gradients accumulate,
// no-grad scopes build no graph, views share storage, backward frees the graph, shape errors
// name the op and the shapes, and seeded fills do not depend on the thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/ops.h"
#include "core/runtime/parallel.h"
#include "core/tensor.h"

namespace kiln {
namespace {

Tensor leaf(const Shape& shape, const std::vector<float>& values) {
  return Tensor::from_vector(shape, values).set_requires_grad();
}

void expect_near_all(const Tensor& got, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_TRUE(got.defined());
  const std::vector<float> g = got.to_vector();
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], tol) << "element " << i;
}

// --- accumulation ------------------------------------------------------------------------------

TEST(Autograd, GradientsAccumulateAcrossBackwardPasses) {
  Tensor x = leaf({2, 3}, {1, -2, 3, 0.5f, 4, -1});
  const Tensor w = Tensor::from_vector({2, 3}, {0.5f, 1, -1, 2, 3, -2});
  sum(mul(x, w)).backward();
  expect_near_all(x.grad(), w.to_vector());
  sum(mul(x, w)).backward();  // a fresh graph, the same leaf: += not =
  std::vector<float> twice = w.to_vector();
  for (float& v : twice) v *= 2;
  expect_near_all(x.grad(), twice);
}

TEST(Autograd, BackwardAddsOntoAnExistingGradient) {
  // dlib's check: start from a non-zero gradient and subtract it afterwards.
  Tensor x = leaf({3}, {1, 2, 3});
  float* g = x.grad_data();
  g[0] = 10, g[1] = 20, g[2] = 30;
  sum(square(x)).backward();
  expect_near_all(x.grad(), {10 + 2, 20 + 4, 30 + 6});
}

TEST(Autograd, LeafUsedTwiceGetsTheSumOfBothPaths) {
  // y = x*x + x -> dy/dx = 2x + 1; mul sees the same tensor as both operands.
  Tensor x = leaf({4}, {1, -2, 0.5f, 3});
  sum(add(mul(x, x), x)).backward();
  expect_near_all(x.grad(), {3, -3, 2, 7});
}

TEST(Autograd, IntermediateUsedTwiceGetsTheSumOfBothPaths) {
  // h = 2x; y = h*h + sigmoid(h) -> dy/dx = 2 * (2h + s(h)(1 - s(h))).
  Tensor x = leaf({3}, {0.25f, -1, 2});
  Tensor h = mul(x, 2.0f);
  sum(add(mul(h, h), sigmoid(h))).backward();
  std::vector<float> want;
  for (float xv : {0.25f, -1.0f, 2.0f}) {
    const float hv = 2 * xv, s = 1 / (1 + std::exp(-hv));
    want.push_back(2 * (2 * hv + s * (1 - s)));
  }
  expect_near_all(x.grad(), want);
}

TEST(Autograd, BroadcastOperandGetsTheSumOverRepeatedAxes) {
  Tensor a = leaf({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = leaf({3}, {1, 1, 1});
  sum(add(a, b)).backward();
  expect_near_all(b.grad(), {2, 2, 2});
  expect_near_all(a.grad(), {1, 1, 1, 1, 1, 1});
}

TEST(Autograd, ZeroGradDropsTheGradient) {
  Tensor x = leaf({2}, {3, -1});
  sum(square(x)).backward();
  expect_near_all(x.grad(), {6, -2});
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(square(x)).backward();
  expect_near_all(x.grad(), {6, -2});  // not 12, -4
}

// --- graph recording ---------------------------------------------------------------------------

TEST(Autograd, NoGradGuardBuildsNoGraph) {
  Tensor x = leaf({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(grad_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    {
      NoGradGuard nested;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled()) << "an inner guard must restore the outer state, not 'on'";
    Tensor y = relu(mul(x, x));
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    EXPECT_TRUE(y.impl()->inputs.empty());
    EXPECT_FALSE(static_cast<bool>(y.impl()->backward));
    EXPECT_EQ(y.op(), nullptr);
    expect_near_all(y, {1, 4, 9, 16});  // still computes the numbers
  }
  EXPECT_TRUE(grad_enabled());
  Tensor z = mul(x, x);
  EXPECT_TRUE(z.requires_grad());
  EXPECT_FALSE(z.is_leaf());
}

TEST(Autograd, ConstantsBuildNoGraph) {
  const Tensor a = Tensor::ones({2, 2});
  const Tensor b = Tensor::full({2, 2}, 3);
  Tensor c = matmul(a, b);
  EXPECT_FALSE(c.requires_grad());
  EXPECT_TRUE(c.impl()->inputs.empty());
  EXPECT_THROW(sum(c).backward(), std::logic_error);  // nothing to differentiate
}

TEST(Autograd, RecordedGraphKeepsOnlyEdgesThatNeedGradients) {
  Tensor x = leaf({2}, {1, 2});
  const Tensor k = Tensor::full({2}, 5);
  Tensor y = mul(x, k);
  EXPECT_STREQ(y.op(), "mul");
  ASSERT_EQ(y.impl()->inputs.size(), 1u);
  EXPECT_EQ(y.impl()->inputs[0].impl(), x.impl());
}

TEST(Autograd, SetRequiresGradOnANonLeafThrows) {
  Tensor x = leaf({2}, {1, 2});
  Tensor y = mul(x, 2.0f);
  EXPECT_THROW(y.set_requires_grad(false), std::logic_error);
}

TEST(Autograd, BackwardOnANonScalarThrows) {
  Tensor x = leaf({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y = mul(x, 2.0f);
  EXPECT_THROW(y.backward(), std::invalid_argument);
  try {
    y.backward();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2,3]"), std::string::npos) << e.what();
  }
  // A one-element tensor of any rank is fine.
  sum(y, {0, 1}, true).backward();
  expect_near_all(x.grad(), {2, 2, 2, 2, 2, 2});
}

TEST(Autograd, BackwardFreesTheGraph) {
  Tensor x = leaf({3}, {1, 2, 3});
  Tensor h = square(x);  // a non-leaf the caller still holds
  Tensor loss = sum(h);
  loss.backward();
  expect_near_all(x.grad(), {2, 4, 6});

  // Every node on the path has dropped its closure and its edges.
  EXPECT_TRUE(loss.impl()->inputs.empty());
  EXPECT_FALSE(static_cast<bool>(loss.impl()->backward));
  EXPECT_TRUE(h.impl()->inputs.empty());
  EXPECT_FALSE(static_cast<bool>(h.impl()->backward));
  // The values survive; only the graph is gone.
  expect_near_all(h, {1, 4, 9});

  // A second pass through the freed graph is refused (core/autograd.cpp: logic_error),
  // and the leaf's gradient is left as it was, not doubled or corrupted.
  EXPECT_THROW(loss.backward(), std::logic_error);
  EXPECT_THROW(sum(mul(h, 3.0f)).backward(), std::logic_error);
  expect_near_all(x.grad(), {2, 4, 6});

  // Running the forward pass again gives a fresh graph that works.
  sum(square(x)).backward();
  expect_near_all(x.grad(), {4, 8, 12});
}

TEST(Autograd, IntermediatesOwnedOnlyByTheGraphSurviveBackward) {
  // The usual way a model runs: `h = layer(h)` drops the caller's handle to every
  // intermediate, so the graph's own edges are all that keep them alive while backward()
  // walks them (a node freed when its consumer drops its edges must not be visited after).
  Tensor x = leaf({3}, {0.1f, -0.2f, 0.3f});
  Tensor h = x;
  for (int i = 0; i < 3; ++i) h = tanh(mul(h, 2.0f));
  Tensor loss = sum(h);
  h = Tensor();
  loss.backward();
  std::vector<float> want;
  for (float v : {0.1f, -0.2f, 0.3f}) {
    double d = 1.0, t = v;
    for (int i = 0; i < 3; ++i) {
      t = std::tanh(2.0 * t);
      d *= 2.0 * (1.0 - t * t);
    }
    want.push_back(static_cast<float>(d));
  }
  expect_near_all(x.grad(), want);
}

TEST(Autograd, BackwardOnALeafSeedsItsOwnGradient) {
  Tensor x = leaf({}, {2});
  x.backward();
  expect_near_all(x.grad(), {1});
}

TEST(Autograd, DeepChainDoesNotRecurse) {
  // backward() sorts iteratively: a chain far deeper than a recursive walk could survive.
  Tensor x = leaf({1}, {1});
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add(y, 0.0f);
  sum(y).backward();
  expect_near_all(x.grad(), {1});
}

// --- views and copies --------------------------------------------------------------------------

TEST(Views, ReshapeSharesStorage) {
  Tensor a = Tensor::from_vector({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor b = a.reshape({3, 2});
  Tensor c = reshape(a, {6});
  Tensor d = a.reshape({-1, 1});
  EXPECT_EQ(b.shape(), (Shape{3, 2}));
  EXPECT_EQ(d.shape(), (Shape{6, 1}));
  EXPECT_EQ(b.data(), a.data());
  EXPECT_EQ(c.data(), a.data());
  b.data()[4] = 40;  // through the view...
  EXPECT_EQ(a.at({1, 1}), 40);  // ...shows in the original
  a.data()[0] = -7;
  EXPECT_EQ(c.at({0}), -7);
  EXPECT_EQ(d.at({0, 0}), -7);
}

TEST(Views, SliceSharesStorage) {
  Tensor a = Tensor::from_vector({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor s = a.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data(), a.data() + 2);
  EXPECT_EQ(s.to_vector(), (std::vector<float>{2, 3, 4, 5}));
  s.data()[0] = 20;
  EXPECT_EQ(a.at({1, 0}), 20);
  a.data()[5] = 50;
  EXPECT_EQ(s.at({1, 1}), 50);
  // A slice of a slice, and a reshape of a slice, keep the offset.
  Tensor ss = s.slice(1, 2);
  EXPECT_EQ(ss.data(), a.data() + 4);
  EXPECT_EQ(s.reshape({4}).at({3}), 50);
  EXPECT_EQ(a.slice(4, 4).numel(), 0);
  EXPECT_THROW(a.slice(2, 5), std::invalid_argument);
  EXPECT_THROW(a.slice(3, 2), std::invalid_argument);
}

TEST(Views, SliceGradientLandsInItsRows) {
  Tensor a = leaf({3, 2}, {1, 2, 3, 4, 5, 6});
  sum(square(a.slice(1, 2))).backward();
  expect_near_all(a.grad(), {0, 0, 6, 8, 0, 0});
}

TEST(Views, DetachSharesStorageWithoutTheGraph) {
  Tensor x = leaf({2}, {1, 2});
  Tensor y = mul(x, 3.0f);
  Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.data(), y.data());
}

TEST(Views, CloneCopies) {
  Tensor a = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  Tensor c = a.clone();
  EXPECT_NE(c.data(), a.data());
  EXPECT_EQ(c.to_vector(), a.to_vector());
  c.data()[0] = 100;
  EXPECT_EQ(a.at({0, 0}), 1);
  a.data()[3] = -4;
  EXPECT_EQ(c.at({1, 1}), 4);
  // Clone of a slice copies just the slice.
  Tensor cs = a.slice(1, 2).clone();
  EXPECT_EQ(cs.to_vector(), (std::vector<float>{3, -4}));
}

// --- errors ------------------------------------------------------------------------------------

// Runs fn, expects std::invalid_argument, and expects every needle in its message.
void expect_invalid(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected std::invalid_argument mentioning " << needles[0];
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const std::string& n : needles)
      EXPECT_NE(what.find(n), std::string::npos) << "message \"" << what << "\" lacks \"" << n << "\"";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for " << needles[0] << ": " << e.what();
  }
}

TEST(Errors, ShapeErrorsNameTheOpAndEveryShape) {
  const Tensor a23 = Tensor::zeros({2, 3});
  const Tensor a4 = Tensor::zeros({4});
  expect_invalid([&] { add(a23, a4); }, {"add", "[2,3]", "[4]"});
  expect_invalid([&] { sub(a23, a4); }, {"sub", "[2,3]", "[4]"});
  expect_invalid([&] { mul(a4, a23); }, {"mul", "[4]", "[2,3]"});
  expect_invalid([&] { div(a23, Tensor::zeros({3, 3})); }, {"div", "[2,3]", "[3,3]"});

  expect_invalid([&] { matmul(a23, Tensor::zeros({4, 5})); }, {"matmul", "[2,3]", "[4,5]"});
  expect_invalid([&] { matmul(a23, Tensor::zeros({2, 5}), false, true); },
                 {"matmul", "[2,3]", "[2,5]"});
  expect_invalid([&] { matmul(a4, a23); }, {"matmul", "[4]", "[2,3]"});
  expect_invalid([&] { dense(a23, Tensor::zeros({4, 5}), Tensor::zeros({5})); },
                 {"dense", "[2,3]", "[4,5]"});
  expect_invalid([&] { dense(a23, Tensor::zeros({3, 5}), Tensor::zeros({4})); },
                 {"dense", "[3,5]", "[4]"});

  expect_invalid([&] { conv2d(Tensor::zeros({16, 28, 28, 3}), Tensor::zeros({3, 3, 1, 64}), Tensor()); },
                 {"conv2d", "[16,28,28,3]", "[3,3,1,64]"});
  expect_invalid([&] { conv2d(Tensor::zeros({2, 5, 5, 3}), Tensor::zeros({3, 3, 3, 4}), Tensor::zeros({5})); },
                 {"conv2d", "[3,3,3,4]", "[5]"});
  expect_invalid([&] { conv2d(Tensor::zeros({5, 5, 3}), Tensor::zeros({3, 3, 3, 4}), Tensor()); },
                 {"conv2d", "[5,5,3]"});
  expect_invalid([&] { max_pool2d(Tensor::zeros({5, 5, 3})); }, {"max_pool2d", "[5,5,3]"});

  expect_invalid([&] { softmax_cross_entropy(a23, Tensor::zeros({2, 4})); },
                 {"softmax_cross_entropy", "[2,3]", "[2,4]"});
  expect_invalid([&] {
    Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
    batch_norm(Tensor::zeros({2, 4, 4, 3}), Tensor::ones({4}), Tensor::zeros({3}), rm, rv, true);
  }, {"batch_norm", "[2,4,4,3]", "[4]"});

  expect_invalid([&] { a23.reshape({4, 2}); }, {"reshape", "[2,3]", "[4,2]"});
  expect_invalid([&] { sum(a23, {2}); }, {"sum", "[2,3]"});
  expect_invalid([&] { mean(a23, {-3}); }, {"mean", "[2,3]"});
}

// --- seeded randomness -------------------------------------------------------------------------

class ThreadCount : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = num_threads(); }
  void TearDown() override { set_num_threads(saved_); }
  int saved_ = 1;
};

TEST(Random, SameSeedSameNumbersDifferentSeedDifferentNumbers) {
  const Shape s{3, 50};
  EXPECT_EQ(Tensor::uniform(s, -1, 1, 42).to_vector(), Tensor::uniform(s, -1, 1, 42).to_vector());
  EXPECT_NE(Tensor::uniform(s, -1, 1, 42).to_vector(), Tensor::uniform(s, -1, 1, 43).to_vector());
  EXPECT_EQ(Tensor::normal(s, 0, 1, 7).to_vector(), Tensor::normal(s, 0, 1, 7).to_vector());
  EXPECT_NE(Tensor::normal(s, 0, 1, 7).to_vector(), Tensor::normal(s, 0, 1, 8).to_vector());
  // Element i depends on (seed, i) only: a prefix does not change with the shape.
  const std::vector<float> longer = Tensor::uniform({300}, -1, 1, 42).to_vector();
  const std::vector<float> shorter = Tensor::uniform({150}, -1, 1, 42).to_vector();
  EXPECT_TRUE(std::equal(shorter.begin(), shorter.end(), longer.begin()));
}

TEST(Random, FillsHaveTheRequestedDistribution) {
  const int64_t n = 200000;
  const std::vector<float> u = Tensor::uniform({n}, 2, 5, 3).to_vector();
  double mu = 0;
  for (float v : u) {
    ASSERT_GE(v, 2.0f);
    ASSERT_LT(v, 5.0f);
    mu += v;
  }
  EXPECT_NEAR(mu / n, 3.5, 0.02);
  const std::vector<float> g = Tensor::normal({n}, 1, 2, 4).to_vector();
  double m = 0, m2 = 0;
  for (float v : g) m += v, m2 += static_cast<double>(v) * v;
  m /= n;
  EXPECT_NEAR(m, 1.0, 0.03);
  EXPECT_NEAR(std::sqrt(m2 / n - m * m), 2.0, 0.03);
}

TEST_F(ThreadCount, SeededFillsDoNotDependOnTheThreadCount) {
  // Large enough that the fills take their parallel path.
  const Shape s{400, 1000};
  set_num_threads(1);
  const std::vector<float> u1 = Tensor::uniform(s, -1, 1, 99).to_vector();
  const std::vector<float> n1 = Tensor::normal(s, 0, 1, 99).to_vector();
  const std::vector<float> d1 = dropout(Tensor::ones(s), 0.5f, true, 99).to_vector();
  set_num_threads(2);
  EXPECT_EQ(Tensor::uniform(s, -1, 1, 99).to_vector(), u1);
  EXPECT_EQ(Tensor::normal(s, 0, 1, 99).to_vector(), n1);
  EXPECT_EQ(dropout(Tensor::ones(s), 0.5f, true, 99).to_vector(), d1);
}

// L2 penalty: lambda * sum(w^2) against a plain double sum, on a size that is not a multiple of
// its eight running sums; its gradient 2 * lambda * w added to what is there, on either thread
// count (the gradient loop is parallel from 32,768 weights).
TEST_F(ThreadCount, L2PenaltyValueAndGradient) {
  const int64_t n = 100003;
  Tensor w = Tensor::uniform({n}, -1.0f, 1.0f, 5).set_requires_grad();
  const std::vector<float> pw = w.to_vector();
  double want = 0.0;
  for (const float v : pw) want += static_cast<double>(v) * v;
  want *= 1e-4;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    w.zero_grad();
    const Tensor loss = l2_penalty(w, 1e-4f);
    EXPECT_NEAR(loss.item(), want, 1e-6 * want) << threads << " threads";
    loss.backward();
    const std::vector<float> g = w.grad().to_vector();
    for (int64_t i = 0; i < n; i += 997) ASSERT_FLOAT_EQ(g[i], 2e-4f * pw[i]) << i;
    EXPECT_FLOAT_EQ(g[n - 1], 2e-4f * pw[n - 1]);
  }
}

TEST(Random, DropoutMaskFollowsTheSeedAndScalesTheKeptElements) {
  const Tensor x = Tensor::ones({100, 100});
  const std::vector<float> a = dropout(x, 0.25f, true, 5).to_vector();
  EXPECT_EQ(dropout(x, 0.25f, true, 5).to_vector(), a);
  EXPECT_NE(dropout(x, 0.25f, true, 6).to_vector(), a);
  int64_t kept = 0;
  for (float v : a) {
    ASSERT_TRUE(v == 0.0f || std::abs(v - 1.0f / 0.75f) < 1e-6f) << v;
    kept += v != 0.0f;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 10000, 0.75, 0.02);
  EXPECT_EQ(dropout(x, 0.25f, false, 5).to_vector(), x.to_vector());
  EXPECT_EQ(dropout(x, 0.0f, true, 5).to_vector(), x.to_vector());
}

}  // namespace
}  // namespace kiln
