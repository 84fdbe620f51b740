// The training-curve plot: panel layout, curve colours, legend, the bitmap font, and that the
// PNG lands whole.
#include "optim/report/plot_history.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr Rgb kTrain{31, 119, 180}, kValid{255, 127, 14};

// A history like a short Keras run: loss falls, accuracy rises, validation every 3 epochs.
History sample_history(int epochs, bool auc) {
  History h;
  h.has_auc = auc;
  for (int e = 1; e <= epochs; ++e) {
    EpochLog log;
    log.epoch = e;
    log.loss = 2.0 * std::exp(-0.3 * e);
    log.accuracy = 1.0 - 0.8 * std::exp(-0.4 * e);
    log.auc = 0.7 + 0.02 * e;
    if (e % 3 == 0) {
      log.validated = true;
      log.val_loss = log.loss * 1.2;
      log.val_accuracy = log.accuracy * 0.95;
      log.val_auc = log.auc - 0.05;
    }
    h.epochs.push_back(log);
  }
  return h;
}

int64_t count_color(const RgbCanvas& c, Rgb color, int x0 = 0, int x1 = -1) {
  if (x1 < 0) x1 = c.width;
  int64_t n = 0;
  for (int y = 0; y < c.height; ++y)
    for (int x = x0; x < x1; ++x) n += c.pixel(x, y) == color;
  return n;
}

TEST(PlotHistory, PanelsSideBySideWithBothCurvesInEach) {
  const PlotOptions o{.panel_width = 400, .panel_height = 300};
  const RgbCanvas c = render_history(sample_history(12, false), o);
  EXPECT_EQ(c.width, 800);
  EXPECT_EQ(c.height, 300);
  for (int p = 0; p < 2; ++p) {
    // Each panel holds the training line, the validation markers and some black text/frame.
    EXPECT_GT(count_color(c, kTrain, p * 400, (p + 1) * 400), 200) << "panel " << p;
    EXPECT_GT(count_color(c, kValid, p * 400, (p + 1) * 400), 100) << "panel " << p;
    EXPECT_GT(count_color(c, {0, 0, 0}, p * 400, (p + 1) * 400), 500) << "panel " << p;
  }
}

TEST(PlotHistory, AucAddsAThirdPanelAndATitleAddsARow) {
  const PlotOptions o{.title = "run 1, seed 7", .panel_width = 300, .panel_height = 200};
  const RgbCanvas c = render_history(sample_history(5, true), o);
  EXPECT_EQ(c.width, 900);
  EXPECT_GT(c.height, 200);
  EXPECT_GT(count_color(c, kTrain, 600, 900), 50);
}

TEST(PlotHistory, HandlesEmptyOneEpochAndNonFiniteValues) {
  EXPECT_NO_THROW(render_history(History{}));
  History one = sample_history(1, true);
  one.epochs[0].auc = std::nan("");
  EXPECT_NO_THROW(render_history(one));
  History flat = sample_history(4, false);
  for (EpochLog& e : flat.epochs) e.accuracy = 1.0;  // a constant curve still gets an axis range
  EXPECT_NO_THROW(render_history(flat));
}

TEST(PlotHistory, RejectsTinyPanels) {
  EXPECT_THROW(render_history(sample_history(3, false), {.panel_width = 100}), std::invalid_argument);
  EXPECT_THROW(render_history(sample_history(3, false), {.text_scale = 0}), std::invalid_argument);
}

TEST(BitmapFont, DrawsKnownGlyphsAndABoxForUnknownOnes) {
  RgbCanvas c(40, 10);
  EXPECT_EQ(draw_text(c, 0, 0, "1", {0, 0, 0}), 5);
  // '1' is a vertical bar in column 2 with a foot of 3 pixels in the last row.
  for (int y = 0; y < 7; ++y) EXPECT_EQ(c.pixel(2, y), (Rgb{0, 0, 0})) << y;
  EXPECT_EQ(c.pixel(0, 0), (Rgb{255, 255, 255}));
  EXPECT_EQ(c.pixel(1, 6), (Rgb{0, 0, 0}));
  RgbCanvas box(10, 10);
  draw_text(box, 0, 0, "\x01", {0, 0, 0});
  EXPECT_EQ(box.pixel(0, 0), (Rgb{0, 0, 0}));
  EXPECT_EQ(box.pixel(4, 6), (Rgb{0, 0, 0}));
  EXPECT_EQ(box.pixel(2, 3), (Rgb{255, 255, 255}));
  EXPECT_EQ(text_width("ab", 2), 22);
  EXPECT_EQ(text_width("", 3), 0);
}

TEST(BitmapFont, VerticalTextReadsUpwards) {
  RgbCanvas c(10, 20);
  draw_text(c, 0, 0, "L", {0, 0, 0}, 1, /*vertical=*/true);
  // 'L' turned counter-clockwise: its stem (left column) becomes the bottom row, its foot
  // (bottom row) the right column.
  for (int x = 0; x < 7; ++x) EXPECT_EQ(c.pixel(x, 4), (Rgb{0, 0, 0})) << x;
  for (int y = 0; y < 5; ++y) EXPECT_EQ(c.pixel(6, y), (Rgb{0, 0, 0})) << y;
  EXPECT_EQ(c.pixel(0, 0), (Rgb{255, 255, 255}));
}

TEST(PlotHistory, WritesAPngAtomically) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_plot_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "curves.png").string();
  write_history_png(path, sample_history(10, true), {.title = "test"});
  const PngImage back = read_png(path);
  EXPECT_EQ(back.width, 3 * 560);
  EXPECT_EQ(back.channels, 3);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1);  // no temporary left behind
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
