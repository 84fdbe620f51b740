#include "data/augment/augment.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <numeric>
#include <string>
#include <unistd.h>

#include "core/io/png_image.h"

namespace kiln {
namespace {

constexpr double kPi = std::numbers::pi;

// One image [1,H,W,1] from rows of values.
Tensor image(int64_t h, int64_t w, const std::vector<float>& values) {
  return Tensor::from_vector({1, h, w, 1}, values);
}

void expect_values(const Tensor& t, const std::vector<float>& expected, float tol = 1e-5f) {
  const std::vector<float> got = t.to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], tol) << "element " << i;
  }
}

SamplingOptions fill(FillMode mode, float value = 0.0f,
                     Interpolation interp = Interpolation::bilinear) {
  SamplingOptions s;
  s.fill_mode = mode;
  s.fill_value = value;
  s.interpolation = interp;
  return s;
}

// --- rotation -------------------------------------------------------------------------------

TEST(Rotate, QuarterTurnCounterClockwiseOfSquareImage) {
  const Tensor x = image(3, 3, {1, 2, 3,  //
                                4, 5, 6,  //
                                7, 8, 9});
  // +90 degrees: the top-right corner moves to the top-left, as displayed.
  expect_values(rotate(x, kPi / 2), {3, 6, 9,  //
                                     2, 5, 8,  //
                                     1, 4, 7});
  expect_values(rotate(x, -kPi / 2), {7, 4, 1,  //
                                      8, 5, 2,  //
                                      9, 6, 3});
  expect_values(rotate(x, kPi), {9, 8, 7, 6, 5, 4, 3, 2, 1});
}

TEST(Rotate, QuarterTurnOfNonSquareImageTurnsAboutTheCentre) {
  // 2x4: centre (1.5, 0.5); output (x, y) samples input column 2 - y, row x - 1.
  const Tensor x = image(2, 4, {0, 1, 2, 3,  //
                                4, 5, 6, 7});
  expect_values(rotate(x, kPi / 2, fill(FillMode::constant, -1.0f)), {-1, 2, 6, -1,  //
                                                                      -1, 1, 5, -1});
  // Reflect: rows -1 and 2 mirror to rows 0 and 1.
  expect_values(rotate(x, kPi / 2), {2, 2, 6, 6,  //
                                     1, 1, 5, 5});
}

TEST(Rotate, KeepsChannelsTogether) {
  Tensor x = Tensor::from_vector({1, 2, 2, 2}, {1, 10, 2, 20,  //
                                                3, 30, 4, 40});
  // +90 degrees on 2x2: [[2,4],[1,3]].
  expect_values(rotate(x, kPi / 2), {2, 20, 4, 40, 1, 10, 3, 30});
}

TEST(Rotate, NearestInterpolationPicksTheRoundedSource) {
  const Tensor x = image(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  // A small turn moves no source position by half a pixel near the centre.
  const Tensor y = rotate(x, 0.1, fill(FillMode::reflect, 0, Interpolation::nearest));
  EXPECT_FLOAT_EQ(y.at({0, 1, 1, 0}), 5.0f);
  for (float v : y.to_vector()) EXPECT_EQ(v, std::round(v));
}

TEST(RotationMap, MatchesKerasMatrix) {
  // Keras: x_offset = ((W-1) - (cos (W-1) - sin (H-1))) / 2, y_offset likewise.
  const double a = 0.3, h = 5, w = 8;
  const AffineMap m = rotation_map(a, 5, 8);
  const double c = std::cos(a), s = std::sin(a);
  EXPECT_NEAR(m.a0, c, 1e-6);
  EXPECT_NEAR(m.a1, -s, 1e-6);
  EXPECT_NEAR(m.b0, s, 1e-6);
  EXPECT_NEAR(m.b1, c, 1e-6);
  EXPECT_NEAR(m.a2, ((w - 1) - (c * (w - 1) - s * (h - 1))) / 2, 1e-5);
  EXPECT_NEAR(m.b2, ((h - 1) - (s * (w - 1) + c * (h - 1))) / 2, 1e-5);
}

// --- translation and fill modes -------------------------------------------------------------

const std::vector<float> kRow = {1, 2, 3, 4};  // "a b c d"

TEST(Translate, OnePixelRightWithEachFillMode) {
  const Tensor x = image(1, 4, kRow);
  expect_values(translate(x, 0, 1, fill(FillMode::reflect)), {1, 1, 2, 3});
  expect_values(translate(x, 0, 1, fill(FillMode::constant, 9)), {9, 1, 2, 3});
  expect_values(translate(x, 0, 1, fill(FillMode::nearest)), {1, 1, 2, 3});
  expect_values(translate(x, 0, 1, fill(FillMode::wrap)), {4, 1, 2, 3});
}

TEST(Translate, OnePixelLeftWithEachFillMode) {
  const Tensor x = image(1, 4, kRow);
  expect_values(translate(x, 0, -1, fill(FillMode::reflect)), {2, 3, 4, 4});
  expect_values(translate(x, 0, -1, fill(FillMode::constant, 9)), {2, 3, 4, 9});
  expect_values(translate(x, 0, -1, fill(FillMode::nearest)), {2, 3, 4, 4});
  expect_values(translate(x, 0, -1, fill(FillMode::wrap)), {2, 3, 4, 1});
}

TEST(Translate, OnePixelDownAndUpMoveRows) {
  const Tensor x = image(3, 2, {1, 2,  //
                                3, 4,  //
                                5, 6});
  expect_values(translate(x, 1, 0, fill(FillMode::reflect)), {1, 2, 1, 2, 3, 4});
  expect_values(translate(x, 1, 0, fill(FillMode::constant, 9)), {9, 9, 1, 2, 3, 4});
  expect_values(translate(x, 1, 0, fill(FillMode::nearest)), {1, 2, 1, 2, 3, 4});
  expect_values(translate(x, 1, 0, fill(FillMode::wrap)), {5, 6, 1, 2, 3, 4});
  expect_values(translate(x, -1, 0, fill(FillMode::wrap)), {3, 4, 5, 6, 1, 2});
  expect_values(translate(x, -1, 0, fill(FillMode::reflect)), {3, 4, 5, 6, 5, 6});
}

TEST(Translate, TwoPixelsSeparateReflectFromNearest) {
  const Tensor x = image(1, 4, kRow);
  // d c b a | a b c d: two positions left of a read b, a.
  expect_values(translate(x, 0, 2, fill(FillMode::reflect)), {2, 1, 1, 2});
  expect_values(translate(x, 0, 2, fill(FillMode::nearest)), {1, 1, 1, 2});
  expect_values(translate(x, 0, 2, fill(FillMode::wrap)), {3, 4, 1, 2});
  expect_values(translate(x, 0, 2, fill(FillMode::constant, 0)), {0, 0, 1, 2});
  // Far outside (sources -9..-6): reflect repeats "a b c d d c b a", wrap "a b c d".
  expect_values(translate(x, 0, 9, fill(FillMode::reflect)), {1, 1, 2, 3});
  expect_values(translate(x, 0, 9, fill(FillMode::wrap)), {4, 1, 2, 3});
}

TEST(Translate, HalfPixelIsBilinear) {
  const Tensor x = image(1, 4, kRow);
  // Source positions -0.5, 0.5, 1.5, 2.5.
  expect_values(translate(x, 0, 0.5, fill(FillMode::reflect)), {1, 1.5, 2.5, 3.5});
  expect_values(translate(x, 0, 0.5, fill(FillMode::nearest)), {1, 1.5, 2.5, 3.5});
  expect_values(translate(x, 0, 0.5, fill(FillMode::wrap)), {2.5, 1.5, 2.5, 3.5});
  // TensorFlow's constant mode fills any position outside [0, W-1] entirely.
  expect_values(translate(x, 0, 0.5, fill(FillMode::constant, 9)), {9, 1.5, 2.5, 3.5});
  // Quarter pixel in both axes on a 2x2 image (nearest fill at the border).
  const Tensor sq = image(2, 2, {0, 4, 8, 12});
  expect_values(translate(sq, -0.25, -0.25, fill(FillMode::nearest)), {3, 6, 9, 12});
}

TEST(Translate, NearestInterpolationRoundsHalfAwayFromZero) {
  const Tensor x = image(1, 4, kRow);
  const SamplingOptions s = fill(FillMode::reflect, 0, Interpolation::nearest);
  expect_values(translate(x, 0, 0.4, s), {1, 2, 3, 4});
  expect_values(translate(x, 0, 0.6, s), {1, 1, 2, 3});
  expect_values(translate(x, 0, -0.5, s), {2, 3, 4, 4});
}

// --- flip and brightness --------------------------------------------------------------------

TEST(Flip, MirrorsEachAxis) {
  const Tensor x = image(2, 3, {1, 2, 3,  //
                                4, 5, 6});
  expect_values(flip(x, true, false), {3, 2, 1, 6, 5, 4});
  expect_values(flip(x, false, true), {4, 5, 6, 1, 2, 3});
  expect_values(flip(x, true, true), {6, 5, 4, 3, 2, 1});
  expect_values(flip(x, false, false), {1, 2, 3, 4, 5, 6});
  // Channels stay with their pixel.
  const Tensor rgb = Tensor::from_vector({1, 1, 2, 3}, {1, 2, 3, 4, 5, 6});
  expect_values(flip(rgb, true, false), {4, 5, 6, 1, 2, 3});
}

TEST(Brightness, AddsDeltaAndClipsToValueRange) {
  const Tensor x = image(1, 5, {-1, -0.5f, 0, 0.5f, 1});
  expect_values(adjust_brightness(x, 0.6f, {-1, 1}), {-0.4f, 0.1f, 0.6f, 1, 1});
  expect_values(adjust_brightness(x, -0.6f, {-1, 1}), {-1, -1, -0.6f, -0.1f, 0.4f});
  // Values already outside the range are clipped even with a zero delta (Keras clips always).
  expect_values(adjust_brightness(image(1, 2, {-3, 3}), 0.0f, {-1, 1}), {-1, 1});
}

// --- random parameters ----------------------------------------------------------------------

struct Stats {
  double min = 1e300, max = -1e300, mean = 0;
};
template <class T>
Stats stats(const std::vector<T>& v) {
  Stats s;
  for (T x : v) {
    s.min = std::min(s.min, static_cast<double>(x));
    s.max = std::max(s.max, static_cast<double>(x));
    s.mean += static_cast<double>(x);
  }
  s.mean /= static_cast<double>(v.size());
  return s;
}

constexpr int64_t kDraws = 10000;

TEST(RandomRotation, AnglesUniformInFactorTimesTwoPi) {
  Generator rng(1);
  const RandomRotation layer(0.05f);
  const Stats s = stats(layer.draw_angles(kDraws, rng));
  const double a = 0.05 * 2 * kPi;
  EXPECT_GE(s.min, -a);
  EXPECT_LE(s.max, a);
  EXPECT_LT(s.min, -0.99 * a);  // the whole range is reached
  EXPECT_GT(s.max, 0.99 * a);
  // Uniform on [-a, a]: standard deviation a / sqrt(3), so the mean's is a / sqrt(3) / 100.
  EXPECT_NEAR(s.mean, 0.0, 5 * a / std::sqrt(3.0) / 100);

  const RandomRotation pair({0.3f, -0.2f});  // sorted like Keras
  EXPECT_FLOAT_EQ(pair.factor().lower, -0.2f);
  const Stats p = stats(pair.draw_angles(kDraws, rng));
  EXPECT_GE(p.min, -0.2 * 2 * kPi);
  EXPECT_LE(p.max, 0.3 * 2 * kPi);
  EXPECT_NEAR(p.mean, 0.05 * 2 * kPi, 0.05);
}

TEST(RandomTranslation, ShiftsAreFractionsOfTheImageSize) {
  Generator rng(2);
  const RandomTranslation layer(0.1f, 0.05f);
  const auto shifts = layer.draw_shifts(kDraws, 30, 40, rng);
  std::vector<double> dy, dx;
  for (auto [y, x] : shifts) {
    dy.push_back(y);
    dx.push_back(x);
  }
  const Stats sy = stats(dy), sx = stats(dx);
  EXPECT_GE(sy.min, -3.0);
  EXPECT_LE(sy.max, 3.0);
  EXPECT_LT(sy.min, -2.9);
  EXPECT_GT(sy.max, 2.9);
  EXPECT_GE(sx.min, -2.0);
  EXPECT_LE(sx.max, 2.0);
  EXPECT_NEAR(sy.mean, 0.0, 5 * 3.0 / std::sqrt(3.0) / 100);
  EXPECT_NEAR(sx.mean, 0.0, 5 * 2.0 / std::sqrt(3.0) / 100);
}

TEST(RandomBrightness, DeltasThroughTheLayerStayInRange) {
  // Zero images: the output of image i is its delta, which stays within +-0.1 * 2.
  Generator rng(3);
  const RandomBrightness layer(0.1f, {-1, 1});
  const Tensor y = layer(Tensor::zeros({kDraws, 1, 1, 1}), rng, true);
  const Stats s = stats(y.to_vector());
  EXPECT_GE(s.min, -0.2);
  EXPECT_LE(s.max, 0.2);
  EXPECT_LT(s.min, -0.19);
  EXPECT_GT(s.max, 0.19);
  EXPECT_NEAR(s.mean, 0.0, 5 * 0.2 / std::sqrt(3.0) / 100);
}

TEST(RandomFlip, EachAxisFlipsHalfTheTimeIndependently) {
  // Image [[0,1],[2,3]]: the value landing top-left says which flips happened (bit 0:
  // horizontal, bit 1: vertical).
  std::vector<float> values;
  for (int64_t i = 0; i < kDraws; ++i) values.insert(values.end(), {0, 1, 2, 3});
  const Tensor x = Tensor::from_vector({kDraws, 2, 2, 1}, values);
  auto counts = [&](FlipMode mode) {
    Generator rng(4);
    const Tensor y = RandomFlip(mode)(x, rng, true);
    std::vector<int> c(4, 0);
    for (int64_t i = 0; i < kDraws; ++i) c[static_cast<int>(y.at({i, 0, 0, 0}))]++;
    return c;
  };
  const double tol = 5 * std::sqrt(0.25 / kDraws) * kDraws;  // 5 sigma in counts
  const auto h = counts(FlipMode::horizontal);
  EXPECT_EQ(h[2] + h[3], 0);
  EXPECT_NEAR(h[1], kDraws / 2.0, tol);
  const auto v = counts(FlipMode::vertical);
  EXPECT_EQ(v[1] + v[3], 0);
  EXPECT_NEAR(v[2], kDraws / 2.0, tol);
  const auto both = counts(FlipMode::horizontal_and_vertical);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(both[k], kDraws / 4.0, tol) << "case " << k;
}

// --- modes, determinism, pipeline -----------------------------------------------------------

Augmentation task3_recipe() {
  return Augmentation{RandomRotation(0.4f), RandomTranslation(0.1f, 0.1f),
                      RandomBrightness(0.15f, {-1, 1}),
                      RandomFlip(FlipMode::horizontal_and_vertical)};
}

TEST(Augmentation, IdentityInInferenceAndDrawsNothing) {
  const Tensor x = Tensor::uniform({4, 8, 8, 3}, -1, 1, 7);
  const Augmentation aug = task3_recipe();
  Generator rng(5);
  const Tensor y = aug(x, rng, false);
  EXPECT_EQ(y.data(), x.data());
  for (size_t i = 0; i < aug.size(); ++i) {
    EXPECT_EQ(aug.step(i)(x, rng, false).data(), x.data()) << aug.step(i).describe();
  }
  Generator fresh(5);
  EXPECT_EQ(rng.next_u64(), fresh.next_u64());
}

TEST(Augmentation, TrainingChangesImagesAndKeepsShape) {
  const Tensor x = Tensor::uniform({4, 8, 8, 3}, -1, 1, 7);
  const Tensor y = task3_recipe().apply(x, 11);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_NE(y.to_vector(), x.to_vector());
  for (float v : y.to_vector()) {
    EXPECT_GE(v, -1.0f);
    EXPECT_LE(v, 1.0f);
  }
}

TEST(Augmentation, SameSeedSameOutputAnyThreadCount) {
  const Tensor x = Tensor::uniform({9, 16, 12, 3}, -1, 1, 8);
  const Augmentation aug = task3_recipe();
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = aug.apply(x, 42).to_vector();
  omp_set_num_threads(2);
  const std::vector<float> two = aug.apply(x, 42).to_vector();
  omp_set_num_threads(saved);
  const std::vector<float> again = aug.apply(x, 42).to_vector();
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
  EXPECT_EQ(one, again);
  EXPECT_NE(aug.apply(x, 43).to_vector(), one);
}

TEST(Augmentation, StepsRunInOrderOnOneGenerator) {
  const Tensor x = Tensor::uniform({3, 6, 5, 1}, -1, 1, 9);
  const RandomRotation rot(0.1f);
  const RandomFlip flp(FlipMode::horizontal);
  const Augmentation aug{rot, flp};
  Generator a(21), b(21);
  const Tensor by_hand = flp(rot(x, b, true), b, true);
  EXPECT_EQ(aug(x, a, true).to_vector(), by_hand.to_vector());
  EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Augmentation, ReusesCallerOutputBuffer) {
  const Tensor x = Tensor::uniform({2, 5, 5, 3}, -1, 1, 10);
  for (const Augmentation& aug :
       {Augmentation{RandomFlip()}, Augmentation{RandomFlip(), RandomBrightness(0.1f, {-1, 1})},
        task3_recipe()}) {
    Tensor out = Tensor::empty(x.shape());
    Generator a(3), b(3);
    const Tensor y = aug(x, a, true, out);
    EXPECT_EQ(y.data(), out.data());
    EXPECT_EQ(y.to_vector(), aug(x, b, true).to_vector());
  }
  Tensor wrong = Tensor::empty({2, 5, 5, 1});
  Generator g(1);
  EXPECT_THROW(task3_recipe()(x, g, true, wrong), std::invalid_argument);
  EXPECT_THROW(task3_recipe()(x, g, true, x), std::invalid_argument);
}

TEST(Augmentation, ErrorsNameTheOpAndShape) {
  Generator rng(1);
  const Tensor flat = Tensor::zeros({4, 8});
  try {
    RandomRotation(0.1f)(flat, rng, true);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("RandomRotation"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4,8]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(task3_recipe()(flat, rng, false), std::invalid_argument);
  EXPECT_THROW(RandomTranslation(1.5f, 0.1f), std::invalid_argument);
  EXPECT_THROW(RandomRotation({-0.5f, 1.2f}), std::invalid_argument);
  EXPECT_THROW(RandomBrightness(0.1f, {1, 1}), std::invalid_argument);
  EXPECT_THROW(RandomBrightness(-2.0f, {0, 1}), std::invalid_argument);
  EXPECT_THROW(affine_transform(Tensor::zeros({2, 3, 3, 1}), {AffineMap{}}), std::invalid_argument);
  EXPECT_THROW(parse_fill_mode("mirror"), std::invalid_argument);
  EXPECT_EQ(parse_fill_mode("wrap"), FillMode::wrap);
  EXPECT_EQ(parse_flip_mode("horizontal_and_vertical"), FlipMode::horizontal_and_vertical);
}

TEST(Augmentation, DescribesItsSteps) {
  const std::string text = task3_recipe().describe();
  EXPECT_NE(text.find("RandomRotation(factor=(-0.4, 0.4), fill_mode=reflect, "
                      "interpolation=bilinear)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("RandomFlip(mode=horizontal_and_vertical)"), std::string::npos) << text;
}

TEST(AugmentationGrid, OriginalsInFirstColumnThenCopies) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("kiln_augment_grid_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "grid.png").string();
  // Two 3x4 gray images, all black.
  const Tensor x = Tensor::from_vector({2, 3, 4, 1}, std::vector<float>(24, -1.0f));
  const Augmentation aug{RandomBrightness(0.5f, {-1, 1})};
  write_augmentation_grid(x, aug, 3, 99, {-1, 1}, path, 2);
  const PngImage png = read_png(path);
  EXPECT_EQ(png.width, 4 * (4 * 2) + 3);
  EXPECT_EQ(png.height, 2 * (3 * 2) + 1);
  EXPECT_EQ(png.channels, 3);
  EXPECT_EQ(png.pixels[0], 0);  // original: black
  // Copy columns carry the brightened images of the same Generator stream.
  Generator rng(99);
  const float first_copy = aug(x, rng, true).at({0, 0, 0, 0});
  const int expected = static_cast<int>(std::round((first_copy + 1) * 127.5f));
  EXPECT_EQ(png.pixels[static_cast<size_t>(8 + 1) * 3], expected);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
