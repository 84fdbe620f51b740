// Drawing on an RgbCanvas (core/io/png_image.h) for kiln's figures: text in a built-in 5x7
// bitmap font, and a line-plot panel with axes, tick labels, grid, title and legend, the way
// matplotlib draws one. Training curves (plot_history.h), ROC curves and the inspection
// pictures (optim/inspect/) are made of these, so plotting needs nothing beyond libpng.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io/png_image.h"

namespace kiln {

// Draws `text` in the built-in 5x7 font with its top-left corner at (x, y), each font pixel
// scale x scale (the tails of g, p, q, y reach 2 font pixels below the 7); vertical turns it 90 degrees counter-clockwise (reading bottom to top, for a
// y-axis label). Characters without a glyph draw as a hollow box. Returns the advance in pixels.
int draw_text(RgbCanvas& canvas, int x, int y, const std::string& text, Rgb color, int scale = 1,
              bool vertical = false);
// Width in pixels of `text` drawn at `scale` (6 font pixels per character, less the last gap).
int text_width(const std::string& text, int scale = 1);

// One curve of a panel: points joined by a 2-pixel line, with dots (up to 40 points) or
// square markers, and its name in the legend.
struct PlotSeries {
  std::string name;
  Rgb color;
  bool squares = false;  // square markers (validation points) rather than dots
  std::vector<double> x, y;
};

struct PanelSpec {
  std::string title, x_label, y_label;
  int64_t epochs = 0;       // > 0: x is the epochs 1..epochs, with whole-number ticks
  bool unit_range = false;  // x and y both span [0, 1] (a ROC curve); else fitted to the data
};

// Draws one panel into the width x height block of c whose top-left corner is (left, top):
// the series over a frame with ticks and grid lines, the title above, axis labels below and
// (turned) to the left, and a legend in the corner the curves cross least. Non-finite points
// are left out (the curve breaks there). text_scale: each font pixel as scale x scale.
void draw_line_panel(RgbCanvas& c, int left, int top, int width, int height, const PanelSpec& spec,
                     const std::vector<PlotSeries>& series, int text_scale);

}  // namespace kiln
