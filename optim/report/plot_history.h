// Training curves as a PNG, like the lab report's figures: panels side by side for loss and
// accuracy (and AUC when the history has it), each with the training curve and the validation
// points of the epochs where validation ran, axes with tick labels, and a legend. Text is drawn
// with a small built-in 5x7 bitmap font, so plotting needs nothing beyond libpng.
#pragma once

#include <string>

#include "core/io/png_image.h"
#include "optim/report/plot.h"  // draw_text, text_width
#include "optim/train/fit.h"

namespace kiln {

struct PlotOptions {
  std::string title;         // drawn above the panels when not empty (e.g. "task2 run 1, seed 3")
  int panel_width = 560;     // pixels per panel
  int panel_height = 420;
  int text_scale = 2;        // each font pixel becomes text_scale x text_scale
};

// history -> a canvas with one panel per metric: "Model loss", "Model accuracy" and, when
// history.has_auc, "Model AUC"; x = epoch (1-based), y = the metric. Train: a line with dots;
// validation: a line through square markers at the validated epochs. Non-finite values (an AUC
// with one class absent) are left out. Throws std::invalid_argument for a panel smaller than
// 200x150 or a text_scale outside 1..4.
RgbCanvas render_history(const History& history, const PlotOptions& options = {});

// render_history written to path as PNG (through write_png: a temporary file, then renamed).
void write_history_png(const std::string& path, const History& history,
                       const PlotOptions& options = {});

}  // namespace kiln
