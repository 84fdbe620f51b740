// The layers the Keras importer added: Permute (and the permute op it runs), Reshape and
// AvgPool2D, with their shape errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "layers/avg_pool2d.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "layers/sequential.h"

namespace kiln {
namespace {

Tensor arange(const Shape& s) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(s, v);
}

TEST(PermuteOp, NchwToNhwcMovesEveryElement) {
  const Tensor x = arange({2, 3, 4, 5});  // [N,C,H,W]
  const Tensor y = permute(x, {0, 2, 3, 1});
  ASSERT_EQ(y.shape(), (Shape{2, 4, 5, 3}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w) ASSERT_EQ(y.at({n, h, w, c}), x.at({n, c, h, w}));
}

TEST(PermuteOp, InverseRestoresAndIdentityCopies) {
  const Tensor x = Tensor::normal({3, 2, 4}, 0, 1, 7);
  EXPECT_EQ(permute(permute(x, {2, 0, 1}), {1, 2, 0}).to_vector(), x.to_vector());
  EXPECT_EQ(permute(x, {0, 1, 2}).to_vector(), x.to_vector());
}

TEST(PermuteOp, RejectsANonPermutation) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_THROW(permute(x, {0, 0}), std::invalid_argument);
  EXPECT_THROW(permute(x, {0}), std::invalid_argument);
  try {
    permute(x, {1, 2});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("permute: dims (1,2)"), std::string::npos) << e.what();
  }
}

TEST(PermuteLayer, KerasDimsAreOneBasedOverTheExample) {
  Permute p({3, 1, 2});  // [N,H,W,C] -> [N,C,H,W]
  const Tensor x = arange({1, 2, 3, 4});
  const Tensor y = p(x);
  ASSERT_EQ(y.shape(), (Shape{1, 4, 2, 3}));
  EXPECT_EQ(y.at({0, 3, 1, 2}), x.at({0, 1, 2, 3}));
  EXPECT_THROW(Permute({1, 1}), std::invalid_argument);
  EXPECT_THROW(Permute({0, 1}), std::invalid_argument);
  EXPECT_THROW(p(Tensor::zeros({2, 3})), std::invalid_argument);
}

TEST(ReshapeLayer, KeepsTheBatchAndResolvesMinusOne) {
  Reshape r({1, -1, 28});
  const Tensor y = r(arange({3, 784}));
  EXPECT_EQ(y.shape(), (Shape{3, 1, 28, 28}));
  EXPECT_EQ(y.at({2, 0, 27, 27}), 3 * 784 - 1);
  EXPECT_THROW(Reshape({-1, -1}), std::invalid_argument);
  EXPECT_THROW(Reshape({0, 4}), std::invalid_argument);
  EXPECT_THROW(r(Tensor::zeros({2, 30})), std::invalid_argument);
}

TEST(AvgPool2DLayer, DefaultsToStrideEqualPoolAndShowsInSummary) {
  Sequential s;
  s.add(std::make_shared<AvgPool2D>(AvgPool2DOptions{.pool = 2}));
  EXPECT_EQ(s(Tensor::ones({1, 6, 6, 2})).shape(), (Shape{1, 3, 3, 2}));
  const std::string table = summary(s, {6, 6, 2});
  EXPECT_NE(table.find("average_pooling2d (AveragePooling2D 2x2)"), std::string::npos) << table;
}

}  // namespace
}  // namespace kiln
