#include "optim/inspect/confusion.h"

#include <algorithm>
#include <cstdio>

#include "core/io/write_atomically.h"
#include "optim/report/plot.h"

namespace kiln {

int64_t ConfusionMatrix::row_total(int64_t truth) const {
  int64_t n = 0;
  for (int64_t p = 0; p < classes; ++p) n += at(truth, p);
  return n;
}

double ConfusionMatrix::row_fraction(int64_t truth, int64_t predicted) const {
  const int64_t n = row_total(truth);
  return n ? static_cast<double>(at(truth, predicted)) / static_cast<double>(n) : 0.0;
}

int64_t ConfusionMatrix::total() const {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  return n;
}

int64_t ConfusionMatrix::correct() const {
  int64_t n = 0;
  for (int64_t k = 0; k < classes; ++k) n += at(k, k);
  return n;
}

std::vector<int32_t> predicted_classes(const Tensor& scores) {
  check_arg(scores.dim() == 2 && scores.size(1) >= 1, "predicted_classes", "scores " + shape_str(scores.shape()) + " are not [N,K]");
  const int64_t N = scores.size(0), K = scores.size(1);
  std::vector<int32_t> out(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const float* r = scores.data() + i * K;
    out[static_cast<size_t>(i)] = K == 1 ? (r[0] >= 0.5f) : static_cast<int32_t>(std::max_element(r, r + K) - r);
  }
  return out;
}

ConfusionMatrix confusion_matrix(const Tensor& scores, const std::vector<int32_t>& labels, int64_t classes) {
  const std::vector<int32_t> pred = predicted_classes(scores);
  check_arg(pred.size() == labels.size(), "confusion_matrix",
            "scores " + shape_str(scores.shape()) + " for " + std::to_string(labels.size()) + " labels");
  int64_t K = std::max<int64_t>(classes, scores.size(1) == 1 ? 2 : scores.size(1));
  for (int32_t l : labels) K = std::max<int64_t>(K, l + 1);
  check_arg(classes <= 0 || K == classes, "confusion_matrix",
            std::to_string(classes) + " classes asked for, but the scores or labels need " + std::to_string(K));
  ConfusionMatrix cm{K, std::vector<int64_t>(static_cast<size_t>(K * K), 0)};
  for (size_t i = 0; i < labels.size(); ++i) {
    check_arg(labels[i] >= 0, "confusion_matrix", "label " + std::to_string(labels[i]) + " of row " + std::to_string(i));
    ++cm.counts[static_cast<size_t>(labels[i] * K + pred[i])];
  }
  return cm;
}

namespace {
std::string name_of(const std::vector<std::string>& names, int64_t k) {
  return static_cast<size_t>(k) < names.size() ? names[static_cast<size_t>(k)] : std::to_string(k);
}
}  // namespace

void write_confusion_csv(const std::string& path, const ConfusionMatrix& cm, const std::vector<std::string>& names) {
  write_stream_atomically(path, [&](std::ostream& f) {
    f << "true,predicted,count,row_fraction\n";
    char buf[32];
    for (int64_t t = 0; t < cm.classes; ++t)
      for (int64_t p = 0; p < cm.classes; ++p) {
        std::snprintf(buf, sizeof buf, "%.6f", cm.row_fraction(t, p));
        f << name_of(names, t) << "," << name_of(names, p) << "," << cm.at(t, p) << "," << buf << "\n";
      }
  });
}

RgbCanvas render_confusion(const ConfusionMatrix& cm, const std::vector<std::string>& names, const std::string& title) {
  const int s = 2, K = static_cast<int>(cm.classes);
  int label_w = text_width("predicted", s);
  for (int k = 0; k < K; ++k) label_w = std::max(label_w, text_width(name_of(names, k), s));
  const int cell = std::max(std::max(70, text_width("100.0 %", s) + 12), text_width("99999", s) + 12);
  const int left = 16 + 7 * s + 12 + label_w + 10, top = 16 + 7 * s + 16 + 7 * s + 14;
  const int width = left + K * cell + 20, height = top + K * cell + 14 + 7 * s + 12 + 7 * s + 16;
  RgbCanvas c(width, height);
  const Rgb black{0, 0, 0};
  draw_text(c, (width - text_width(title, s)) / 2, 12, title, black, s);
  const std::string acc = "accuracy " + std::to_string(cm.correct()) + " / " + std::to_string(cm.total());
  draw_text(c, (width - text_width(acc, s)) / 2, 12 + 7 * s + 8, acc, {90, 90, 90}, s);
  char buf[32];
  for (int t = 0; t < K; ++t)
    for (int p = 0; p < K; ++p) {
      const double f = cm.row_fraction(t, p);
      // White to the blue of matplotlib's "Blues" by the share of the row.
      const Rgb shade{static_cast<uint8_t>(247 - f * (247 - 8)), static_cast<uint8_t>(251 - f * (251 - 48)),
                      static_cast<uint8_t>(255 - f * (255 - 107))};
      const int x = left + p * cell, y = top + t * cell;
      c.fill_rect(x, y, cell, cell, shade);
      const Rgb ink = f > 0.5 ? Rgb{255, 255, 255} : black;
      const std::string n = std::to_string(cm.at(t, p));
      std::snprintf(buf, sizeof buf, "%.1f %%", 100.0 * f);
      draw_text(c, x + (cell - text_width(n, s)) / 2, y + cell / 2 - 7 * s - 2, n, ink, s);
      draw_text(c, x + (cell - text_width(buf, s)) / 2, y + cell / 2 + 3, buf, ink, s);
    }
  for (int k = 0; k <= K; ++k) {  // grid
    c.draw_line(left, top + k * cell, left + K * cell, top + k * cell, {255, 255, 255});
    c.draw_line(left + k * cell, top, left + k * cell, top + K * cell, {255, 255, 255});
  }
  for (int k = 0; k < K; ++k) {
    const std::string n = name_of(names, k);
    draw_text(c, left - 10 - text_width(n, s), top + k * cell + cell / 2 - 7 * s / 2, n, black, s);
    draw_text(c, left + k * cell + (cell - text_width(n, s)) / 2, top + K * cell + 10, n, black, s);
  }
  draw_text(c, left + (K * cell - text_width("predicted", s)) / 2, top + K * cell + 10 + 7 * s + 10, "predicted", black, s);
  draw_text(c, 14, top + (K * cell - text_width("true", s)) / 2, "true", black, s, /*vertical=*/true);
  return c;
}

}  // namespace kiln
