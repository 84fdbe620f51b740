#include "core/io/png_image.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace kiln {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class PngTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_png_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  // Names in the directory, to prove no temporary file is left behind.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

TEST_F(PngTest, RgbRoundTrip) {
  RgbCanvas canvas(5, 3, {10, 20, 30});
  canvas.set_pixel(0, 0, {255, 0, 0});
  canvas.set_pixel(4, 2, {0, 255, 7});
  canvas.set_pixel(2, 1, {1, 2, 3});
  write_png(file("rgb.png"), canvas);
  const PngImage back = read_png(file("rgb.png"));
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(back.pixels, canvas.pixels);
  EXPECT_EQ(listing(), std::vector<std::string>{"rgb.png"});
}

TEST_F(PngTest, GrayRoundTripAndOverwrite) {
  std::vector<uint8_t> gray(4 * 6);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i * 11);
  write_png(file("g.png"), 4, 6, 1, gray.data());
  PngImage back = read_png(file("g.png"));
  EXPECT_EQ(back.width, 4);
  EXPECT_EQ(back.height, 6);
  EXPECT_EQ(back.channels, 1);
  EXPECT_EQ(back.pixels, gray);
  // Writing again replaces the file.
  gray.assign(gray.size(), 200);
  write_png(file("g.png"), 4, 6, 1, gray.data());
  back = read_png(file("g.png"));
  EXPECT_EQ(back.pixels, gray);
  EXPECT_EQ(listing(), std::vector<std::string>{"g.png"});
}

TEST_F(PngTest, WriteErrorNamesFileAndLeavesNothing) {
  const RgbCanvas canvas(2, 2);
  // Target is an existing directory: the temporary file is written, the rename fails.
  fs::create_directories(dir_ / "taken.png");
  try {
    write_png(file("taken.png"), canvas);
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file("taken.png")), std::string::npos) << e.what();
  }
  EXPECT_EQ(listing(), std::vector<std::string>{"taken.png"});
  // Missing directory: nothing can be opened.
  const std::string missing = file("no/such/dir/x.png");
  try {
    write_png(missing, canvas);
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_png(file("bad.png"), 2, 2, 2, canvas.pixels.data()), std::invalid_argument);
  EXPECT_THROW(write_png(file("bad.png"), 0, 2, 3, canvas.pixels.data()), std::invalid_argument);
}

TEST_F(PngTest, ReadErrorsNameTheFile) {
  try {
    read_png(file("absent.png"));
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.png"), std::string::npos) << e.what();
  }
  std::ofstream(file("text.png")) << "not a png at all";
  try {
    read_png(file("text.png"));
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("text.png"), std::string::npos) << e.what();
  }
}

TEST(RgbCanvas, DrawingHelpersClipToTheCanvas) {
  const Rgb white{255, 255, 255}, red{255, 0, 0}, blue{0, 0, 255};
  RgbCanvas c(6, 4);
  EXPECT_EQ(c.pixel(5, 3), white);
  c.set_pixel(-1, 0, red);  // ignored
  c.set_pixel(6, 0, red);
  c.fill_rect(4, 2, 10, 10, blue);  // runs off the bottom-right corner
  EXPECT_EQ(c.pixel(4, 2), blue);
  EXPECT_EQ(c.pixel(5, 3), blue);
  EXPECT_EQ(c.pixel(3, 2), white);
  EXPECT_EQ(c.pixel(4, 1), white);
  EXPECT_THROW(c.pixel(6, 0), std::out_of_range);

  RgbCanvas d(5, 5, {0, 0, 0});
  d.draw_line(0, 0, 4, 4, red);  // diagonal, both ends included
  for (int i = 0; i < 5; ++i) EXPECT_EQ(d.pixel(i, i), red) << i;
  EXPECT_EQ(d.pixel(1, 0), (Rgb{0, 0, 0}));
  d.draw_line(4, 1, 0, 1, blue);  // right to left
  for (int x = 0; x < 5; ++x) EXPECT_EQ(d.pixel(x, 1), blue) << x;
  d.draw_line(2, -5, 2, 10, white);  // vertical, mostly off the canvas
  for (int y = 0; y < 5; ++y) EXPECT_EQ(d.pixel(2, y), white) << y;
  // A shallow line moves one row at its middle.
  RgbCanvas e(5, 2, {0, 0, 0});
  e.draw_line(0, 0, 4, 1, red);
  int lit = 0;
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 5; ++x) lit += e.pixel(x, y) == red;
  EXPECT_EQ(lit, 5);
  EXPECT_EQ(e.pixel(0, 0), red);
  EXPECT_EQ(e.pixel(4, 1), red);
}

TEST(ImageGrid, LaysOutCellsWithSeparatorsAndScale) {
  // Three 1x2 gray images, values -1, 0, 1 mapped to 0, 128, 255.
  const Tensor images = Tensor::from_vector({3, 1, 2, 1}, {-1, 0, 0, 1, 1, -1});
  ImageGridOptions opt;
  opt.cols = 2;
  opt.scale = 2;
  opt.separator = {9, 9, 9};
  const RgbCanvas g = image_grid(images, opt);
  EXPECT_EQ(g.width, 2 * 4 + 1);
  EXPECT_EQ(g.height, 2 * 2 + 1);
  const Rgb black{0, 0, 0}, mid{128, 128, 128}, white{255, 255, 255}, sep{9, 9, 9};
  // Image 0 at (0,0): pixels -1, 0, each 2x2.
  EXPECT_EQ(g.pixel(0, 0), black);
  EXPECT_EQ(g.pixel(1, 1), black);
  EXPECT_EQ(g.pixel(2, 0), mid);
  EXPECT_EQ(g.pixel(3, 1), mid);
  EXPECT_EQ(g.pixel(4, 0), sep);  // column separator
  // Image 1 at x = 5.
  EXPECT_EQ(g.pixel(5, 0), mid);
  EXPECT_EQ(g.pixel(8, 1), white);
  // Row separator, then image 2, then the empty fourth cell.
  for (int x = 0; x < g.width; ++x) EXPECT_EQ(g.pixel(x, 2), sep) << x;
  EXPECT_EQ(g.pixel(0, 3), white);
  EXPECT_EQ(g.pixel(3, 4), black);
  EXPECT_EQ(g.pixel(6, 4), sep);
}

TEST(ImageGrid, RgbValuesAreClippedToTheRange) {
  const Tensor images = Tensor::from_vector({1, 1, 1, 3}, {-5, 0.5f, 5});
  ImageGridOptions opt;
  opt.value_range = {0, 1};
  const RgbCanvas g = image_grid(images, opt);
  EXPECT_EQ(g.width, 1);
  EXPECT_EQ(g.pixel(0, 0), (Rgb{0, 128, 255}));
  EXPECT_THROW(image_grid(Tensor::zeros({1, 2, 2, 2})), std::invalid_argument);
  EXPECT_THROW(image_grid(Tensor::zeros({2, 2, 3})), std::invalid_argument);
}

TEST_F(PngTest, GridFileHasTheCanvasSize) {
  const Tensor images = Tensor::uniform({5, 4, 3, 3}, -1, 1, 1);
  ImageGridOptions opt;
  opt.cols = 3;
  write_image_grid_png(file("grid.png"), images, opt);
  const PngImage back = read_png(file("grid.png"));
  EXPECT_EQ(back.width, 3 * 3 + 2);
  EXPECT_EQ(back.height, 2 * 4 + 1);
  EXPECT_EQ(back.pixels, image_grid(images, opt).pixels);
}

}  // namespace
}  // namespace kiln
