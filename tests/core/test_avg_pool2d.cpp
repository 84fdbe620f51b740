// Average pooling: the fast kernel against the naive reference over a table of shapes, a
// small case worked by hand (Keras' "same" padding leaves padded cells out of the mean), and
// the op's gradient accumulating into an existing gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "core/kernels/avg_pool2d.h"
#include "core/ops/ops.h"
#include "core/runtime/random.h"

namespace kiln {
namespace {

std::vector<float> random_floats(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 2.0f * uniform_at(seed, static_cast<uint64_t>(i)) - 1.0f;
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

struct PoolCase {
  std::string name;
  int64_t N, H, W, C;
  int K, stride;
  bool same;
};
void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name; }

class AvgPoolKernels : public ::testing::TestWithParam<PoolCase> {};

TEST_P(AvgPoolKernels, FastMatchesNaive) {
  const PoolCase& c = GetParam();
  const Pool2dShape s = Pool2dShape::make(c.N, c.H, c.W, c.C, c.K, c.stride, c.same);
  const int64_t n_in = c.N * c.H * c.W * c.C, n_out = s.N * s.Ho * s.Wo * s.C;
  const std::vector<float> x = random_floats(n_in, 11), dy = random_floats(n_out, 12);

  std::vector<float> y(static_cast<size_t>(n_out)), y_naive(static_cast<size_t>(n_out));
  avg_pool2d_forward(s, x.data(), y.data());
  avg_pool2d_forward_naive(s, x.data(), y_naive.data());
  EXPECT_LT(max_abs_diff(y, y_naive), 1e-6) << c.name;

  // Backward adds into dx: start both from the same non-zero values.
  std::vector<float> dx = random_floats(n_in, 13), dx_naive = dx;
  avg_pool2d_backward(s, dy.data(), dx.data());
  avg_pool2d_backward_naive(s, dy.data(), dx_naive.data());
  EXPECT_LT(max_abs_diff(dx, dx_naive), 1e-6) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AvgPoolKernels,
    ::testing::Values(PoolCase{"k2_s2_valid", 2, 4, 6, 3, 2, 2, false},
                      PoolCase{"k2_s2_valid_odd", 2, 5, 7, 2, 2, 2, false},
                      PoolCase{"k2_s2_same_odd", 2, 5, 7, 2, 2, 2, true},
                      PoolCase{"k3_s2_same", 1, 6, 6, 4, 3, 2, true},
                      PoolCase{"k3_s2_same_odd", 3, 5, 7, 3, 3, 2, true},
                      PoolCase{"k3_s1_same_overlap", 2, 5, 5, 2, 3, 1, true},
                      PoolCase{"k3_s1_valid_overlap", 2, 6, 5, 5, 3, 1, false},
                      PoolCase{"k1_s1", 2, 3, 3, 3, 1, 1, false},
                      PoolCase{"mnist_sized", 8, 28, 28, 16, 2, 2, false}),
    [](const ::testing::TestParamInfo<PoolCase>& info) { return info.param.name; });

// 3x3 input, pool 2, stride 2, "same": Ho = Wo = 2 with one padded row and column at the
// end. The bottom-right window holds one real cell, so its average is that cell.
TEST(AvgPool2d, SamePaddingAveragesOnlyRealCells) {
  const Tensor x = Tensor::from_vector({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Tensor y = avg_pool2d(x, 2, 2, Padding::Same);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 2, 1}));
  EXPECT_FLOAT_EQ(y.at({0, 0, 0, 0}), (1 + 2 + 4 + 5) / 4.0f);
  EXPECT_FLOAT_EQ(y.at({0, 0, 1, 0}), (3 + 6) / 2.0f);
  EXPECT_FLOAT_EQ(y.at({0, 1, 0, 0}), (7 + 8) / 2.0f);
  EXPECT_FLOAT_EQ(y.at({0, 1, 1, 0}), 9.0f);
}

TEST(AvgPool2d, ValidDropsTheRemainder) {
  const Tensor x = Tensor::from_vector({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Tensor y = avg_pool2d(x, 2, 2, Padding::Valid);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 1, 1}));
  EXPECT_FLOAT_EQ(y.item(), 3.0f);
}

TEST(AvgPool2d, GradientAccumulates) {
  Tensor x = Tensor::normal({2, 4, 4, 3}, 0.0f, 1.0f, 5).set_requires_grad();
  sum(avg_pool2d(x, 2, 2, Padding::Valid)).backward();
  const std::vector<float> once = x.grad().to_vector();
  for (float g : once) EXPECT_FLOAT_EQ(g, 0.25f);  // each cell is in one window of four
  sum(avg_pool2d(x, 2, 2, Padding::Valid)).backward();
  const std::vector<float> twice = x.grad().to_vector();
  for (size_t i = 0; i < once.size(); ++i) EXPECT_FLOAT_EQ(twice[i], 2 * once[i]);
}

TEST(AvgPool2d, RejectsBadShapesNamingTheOp) {
  const Tensor small = Tensor::zeros({1, 1, 1, 2});
  try {
    avg_pool2d(small, 2, 2, Padding::Valid);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("avg_pool2d"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1,1,1,2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(avg_pool2d(Tensor::zeros({2, 4, 4}), 2, 2, Padding::Valid), std::invalid_argument);
  EXPECT_THROW(avg_pool2d(Tensor::zeros({1, 4, 4, 1}), 0, 2, Padding::Valid), std::invalid_argument);
}

}  // namespace
}  // namespace kiln
