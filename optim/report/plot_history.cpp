#include "optim/report/plot_history.h"

#include <string>
#include <vector>

#include "optim/report/plot.h"

namespace kiln {
namespace {
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kTrainColor{31, 119, 180};  // matplotlib's first two default colours, as in
constexpr Rgb kValidColor{255, 127, 14};  // the report's figures
constexpr int kGlyphH = 7;
}  // namespace

RgbCanvas render_history(const History& history, const PlotOptions& o) {
  check_arg(o.panel_width >= 200 && o.panel_height >= 150, "render_history",
            "panel " + std::to_string(o.panel_width) + "x" + std::to_string(o.panel_height) +
                " is smaller than 200x150");
  check_arg(o.text_scale >= 1 && o.text_scale <= 4, "render_history",
            "text_scale " + std::to_string(o.text_scale) + " is outside 1..4");
  struct Metric {
    const char* title;
    const char* label;
    double EpochLog::*train;
    double EpochLog::*valid;
  };
  std::vector<Metric> metrics = {{"Model loss", "loss", &EpochLog::loss, &EpochLog::val_loss},
                                 {"Model accuracy", "accuracy", &EpochLog::accuracy, &EpochLog::val_accuracy}};
  if (history.has_auc) metrics.push_back({"Model AUC", "AUC", &EpochLog::auc, &EpochLog::val_auc});

  const int s = o.text_scale;
  const int title_h = o.title.empty() ? 0 : kGlyphH * s + 16;
  RgbCanvas canvas(o.panel_width * static_cast<int>(metrics.size()), o.panel_height + title_h);
  if (!o.title.empty())
    draw_text(canvas, (canvas.width - text_width(o.title, s)) / 2, 12, o.title, kBlack, s);
  for (size_t p = 0; p < metrics.size(); ++p) {
    PlotSeries train{"train", kTrainColor, false, {}, {}}, valid{"validation", kValidColor, true, {}, {}};
    for (const EpochLog& e : history.epochs) {
      train.x.push_back(static_cast<double>(e.epoch));
      train.y.push_back(e.*metrics[p].train);
      if (e.validated) {
        valid.x.push_back(static_cast<double>(e.epoch));
        valid.y.push_back(e.*metrics[p].valid);
      }
    }
    const int64_t epochs = history.epochs.empty() ? 1 : history.epochs.back().epoch;
    draw_line_panel(canvas, static_cast<int>(p) * o.panel_width, title_h, o.panel_width, o.panel_height,
                    {.title = metrics[p].title, .x_label = "epoch", .y_label = metrics[p].label, .epochs = epochs},
                    {train, valid}, s);
  }
  return canvas;
}

void write_history_png(const std::string& path, const History& history, const PlotOptions& options) {
  write_png(path, render_history(history, options));
}

}  // namespace kiln
