#include "optim/inspect/roc.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "core/io/write_atomically.h"
#include "core/tensor.h"
#include "optim/report/plot.h"

namespace kiln {

RocCurve roc_curve(const std::vector<float>& scores, const std::vector<int32_t>& labels) {
  check_arg(scores.size() == labels.size(), "roc_curve",
            std::to_string(scores.size()) + " scores for " + std::to_string(labels.size()) + " labels");
  RocCurve r;
  for (size_t i = 0; i < labels.size(); ++i) {
    check_arg(labels[i] == 0 || labels[i] == 1, "roc_curve", "label " + std::to_string(labels[i]) + " of row " + std::to_string(i) + " is not 0 or 1");
    check_arg(!std::isnan(scores[i]), "roc_curve", "score of row " + std::to_string(i) + " is NaN");
    (labels[i] ? r.positives : r.negatives) += 1;
  }
  check_arg(r.positives > 0 && r.negatives > 0, "roc_curve",
            std::to_string(r.positives) + " positives and " + std::to_string(r.negatives) + " negatives: a ROC curve needs both");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  r.fpr.push_back(0);
  r.tpr.push_back(0);
  r.threshold.push_back(std::numeric_limits<double>::infinity());
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    const float t = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == t; ++i) (labels[order[i]] ? tp : fp) += 1;  // ties enter together
    r.fpr.push_back(static_cast<double>(fp) / static_cast<double>(r.negatives));
    r.tpr.push_back(static_cast<double>(tp) / static_cast<double>(r.positives));
    r.threshold.push_back(t);
  }
  for (size_t i = 1; i < r.fpr.size(); ++i) r.auc += (r.fpr[i] - r.fpr[i - 1]) * (r.tpr[i] + r.tpr[i - 1]) / 2;
  return r;
}

void write_roc_csv(const std::string& path, const RocCurve& roc) {
  write_stream_atomically(path, [&](std::ostream& f) {
    f << "threshold,fpr,tpr\n";
    char buf[96];
    for (size_t i = 0; i < roc.fpr.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g\n", roc.threshold[i], roc.fpr[i], roc.tpr[i]);
      f << buf;
    }
  });
}

RgbCanvas render_roc(const RocCurve& roc, const std::string& title) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s: AUC %.4f", title.c_str(), roc.auc);
  RgbCanvas c(620, 600);
  PlotSeries chance{"chance", {150, 150, 150}, false, {0, 1}, {0, 1}};
  PlotSeries curve{"model", {31, 119, 180}, false, roc.fpr, roc.tpr};
  draw_line_panel(c, 0, 0, 620, 560, {.title = buf, .x_label = "false positive rate", .y_label = "true positive rate",
                                      .unit_range = true},
                  {curve, chance}, 2);
  std::snprintf(buf, sizeof buf, "%lld positives, %lld negatives", static_cast<long long>(roc.positives),
                static_cast<long long>(roc.negatives));
  draw_text(c, (620 - text_width(buf, 2)) / 2, 572, buf, {90, 90, 90}, 2);
  return c;
}

}  // namespace kiln
