#include "optim/inspect/feature_maps.h"

#include <algorithm>
#include <cmath>

#include "layers/avg_pool2d.h"
#include "layers/global_avg_pool2d.h"
#include "layers/max_pool2d.h"
#include "optim/report/plot.h"

namespace kiln {
namespace {

constexpr Rgb kBlack{0, 0, 0};
constexpr int kText = 2;           // font scale
constexpr int kLine = 7 * kText;   // text height

// v in [-1, 1] -> blue, white, red.
Rgb diverging(float v) {
  v = std::clamp(v, -1.0f, 1.0f);
  const auto fade = [](float t) { return static_cast<uint8_t>(255.0f * (1.0f - t)); };
  return v >= 0 ? Rgb{255, fade(v), fade(v)} : Rgb{fade(-v), fade(-v), 255};
}

// Pixel (y, x) of image [H,W,C] (C 1 or 3) at value_range -> RGB.
Rgb image_pixel(const Tensor& img, int64_t y, int64_t x, std::pair<float, float> r) {
  const int64_t W = img.size(1), C = img.size(2);
  auto level = [&](int64_t k) {
    const float v = img.data()[(y * W + x) * C + k];
    return static_cast<uint8_t>(255.0f * std::clamp((v - r.first) / (r.second - r.first), 0.0f, 1.0f));
  };
  return C == 3 ? Rgb{level(0), level(1), level(2)} : Rgb{level(0), level(0), level(0)};
}

void draw_image(RgbCanvas& c, int x0, int y0, const Tensor& img, std::pair<float, float> r, int scale) {
  for (int64_t y = 0; y < img.size(0); ++y)
    for (int64_t x = 0; x < img.size(1); ++x)
      c.fill_rect(x0 + static_cast<int>(x) * scale, y0 + static_cast<int>(y) * scale, scale, scale, image_pixel(img, y, x, r));
}

// A scale that makes an extent of n pixels about `target` canvas pixels wide.
int scale_for(int64_t n, int target) { return std::max(1, static_cast<int>(target / std::max<int64_t>(n, 1))); }

}  // namespace

RgbCanvas render_filters(const Conv2D& conv, const std::string& title, int max_rows, int max_cols) {
  const Tensor& k = const_cast<Conv2D&>(conv).kernel();
  const int64_t K = k.size(0), C = k.size(2), F = k.size(3);
  // One tile per filter in rows of up to 16 (RGB, or one input channel), else a filter per row
  // and an input channel per column.
  const bool rgb = C == 3, single = C == 1, wrap = rgb || single;
  // Kernel pixels as s x s blocks: tiles of about 120 pixels for a handful of filters, 60 for more.
  const int s = std::max(3, (wrap ? (F <= 8 ? 120 : 60) : 30) / static_cast<int>(K));
  const int tile = static_cast<int>(K) * s, gap = 4;
  const int cols = wrap ? std::min<int>(static_cast<int>(F), 16) : std::min<int>(static_cast<int>(C), max_cols);
  const int rows = wrap ? static_cast<int>((F + cols - 1) / cols) : std::min<int>(static_cast<int>(F), max_rows);
  const std::string note = rgb ? std::to_string(F) + " filters, RGB (grey = 0)"
                           : single ? std::to_string(F) + " filters; blue < 0 < red"
                               : "rows: filters (" + std::to_string(std::min<int64_t>(F, max_rows)) + " of " + std::to_string(F) +
                                     "), columns: input channels (" + std::to_string(std::min<int64_t>(C, max_cols)) + " of " +
                                     std::to_string(C) + "); blue < 0 < red";
  const int top = 12 + kLine + 8 + kLine + 12;
  const int width = std::max(cols * (tile + gap) + 40, std::max(text_width(title, kText), text_width(note, kText)) + 24);
  RgbCanvas c(width, top + rows * (tile + gap) + 16);
  draw_text(c, (width - text_width(title, kText)) / 2, 12, title, kBlack, kText);
  draw_text(c, (width - text_width(note, kText)) / 2, 12 + kLine + 8, note, {90, 90, 90}, kText);
  const int left = (width - cols * (tile + gap)) / 2;
  auto w = [&](int64_t i, int64_t j, int64_t ch, int64_t f) { return k.data()[((i * K + j) * C + ch) * F + f]; };
  for (int r = 0; r < rows; ++r)
    for (int col = 0; col < cols; ++col) {
      const int64_t f = wrap ? r * cols + col : r, ch = wrap ? 0 : col;
      if (f >= F) continue;
      float peak = 1e-12f;
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j)
          for (int64_t q = 0; q < (rgb ? 3 : 1); ++q) peak = std::max(peak, std::abs(w(i, j, rgb ? q : ch, f)));
      const int x0 = left + col * (tile + gap), y0 = top + r * (tile + gap);
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j) {
          Rgb px;
          if (rgb) {
            auto lv = [&](int q) { return static_cast<uint8_t>(std::clamp(128.0f + 127.0f * w(i, j, q, f) / peak, 0.0f, 255.0f)); };
            px = {lv(0), lv(1), lv(2)};
          } else {
            px = diverging(w(i, j, ch, f) / peak);
          }
          c.fill_rect(x0 + static_cast<int>(j) * s, y0 + static_cast<int>(i) * s, s, s, px);
        }
    }
  return c;
}

RgbCanvas render_feature_maps(const Trace& trace, const Tensor& image, std::pair<float, float> range, const std::string& title,
                              int max_channels) {
  struct Row {
    std::string label;
    Tensor maps;  // [H,W,C]
  };
  std::vector<Row> rows;
  for (const TracedLayer& l : trace.layers) {
    const bool shown = dynamic_cast<Conv2D*>(l.module) || dynamic_cast<MaxPool2D*>(l.module) || dynamic_cast<AvgPool2D*>(l.module);
    if (!shown || l.output.dim() != 4 || l.output.size(0) != 1) continue;
    const Shape& s = l.output.shape();
    rows.push_back({l.name + " (" + l.module->type_name() + ") " + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                        std::to_string(s[3]),
                    l.output.reshape({s[1], s[2], s[3]})});
  }
  const int cell = 72, gap = 4, label_h = kLine + 8;
  const int cols = max_channels;
  const int img_scale = scale_for(std::max(image.size(0), image.size(1)), 144);
  const int top = 12 + kLine + 14;
  const int img_h = static_cast<int>(image.size(0)) * img_scale;
  int width = std::max(cols * (cell + gap) + 24, text_width(title, kText) + 24);
  for (const Row& r : rows) width = std::max(width, text_width(r.label, kText) + 24);
  int height = top + label_h + img_h + 12;
  for (const Row& r : rows) {
    const int per = std::max(1, cell / static_cast<int>(std::max(r.maps.size(0), r.maps.size(1))));
    height += label_h + static_cast<int>(r.maps.size(0)) * per + 12;
  }
  RgbCanvas c(width, height);
  draw_text(c, (width - text_width(title, kText)) / 2, 12, title, kBlack, kText);
  int y = top;
  draw_text(c, 12, y, "input " + std::to_string(image.size(0)) + "x" + std::to_string(image.size(1)) + "x" + std::to_string(image.size(2)),
            kBlack, kText);
  draw_image(c, 12, y + label_h, image, range, img_scale);
  y += label_h + img_h + 12;
  for (const Row& r : rows) {
    const int64_t H = r.maps.size(0), W = r.maps.size(1), C = r.maps.size(2);
    const int per = std::max(1, cell / static_cast<int>(std::max(H, W)));
    draw_text(c, 12, y, r.label + (C > cols ? "  (first " + std::to_string(cols) + " channels)" : ""), kBlack, kText);
    for (int64_t ch = 0; ch < std::min<int64_t>(C, cols); ++ch) {
      float lo = INFINITY, hi = -INFINITY;
      for (int64_t p = 0; p < H * W; ++p) lo = std::min(lo, r.maps.data()[p * C + ch]), hi = std::max(hi, r.maps.data()[p * C + ch]);
      const int x0 = 12 + static_cast<int>(ch) * (static_cast<int>(W) * per + gap);
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) {
          const float v = hi > lo ? (r.maps.data()[(i * W + j) * C + ch] - lo) / (hi - lo) : 0.0f;
          const auto g = static_cast<uint8_t>(255.0f * v);
          c.fill_rect(x0 + static_cast<int>(j) * per, y + label_h + static_cast<int>(i) * per, per, per, {g, g, g});
        }
    }
    y += label_h + static_cast<int>(H) * per + 12;
  }
  return c;
}

RgbCanvas render_captioned_grid(const Tensor& images, const std::vector<std::string>& captions, std::pair<float, float> range,
                                int cols, int scale, const std::string& title) {
  check_arg(images.dim() == 4 && (images.size(3) == 1 || images.size(3) == 3), "render_captioned_grid",
            "images " + shape_str(images.shape()) + " are not [N,H,W,1] or [N,H,W,3]");
  const int64_t N = images.size(0), H = images.size(1), W = images.size(2);
  int cap_w = static_cast<int>(W) * scale;
  for (const std::string& cap : captions) {
    size_t start = 0;
    while (start <= cap.size()) {
      const size_t end = std::min(cap.find('\n', start), cap.size());
      cap_w = std::max(cap_w, text_width(cap.substr(start, end - start), kText));
      start = end + 1;
    }
  }
  const int cell_w = cap_w + 16, cell_h = static_cast<int>(H) * scale + 2 * (kLine + 6) + 14;
  const int rows = static_cast<int>((N + cols - 1) / std::max(cols, 1));
  const int top = 12 + kLine + 14;
  const int width = std::max(cols * cell_w + 16, text_width(title, kText) + 24);
  RgbCanvas c(width, top + std::max(rows, 1) * cell_h + 8);
  draw_text(c, (width - text_width(title, kText)) / 2, 12, title, kBlack, kText);
  for (int64_t n = 0; n < N; ++n) {
    const int x0 = 8 + static_cast<int>(n % cols) * cell_w, y0 = top + static_cast<int>(n / cols) * cell_h;
    const Tensor img = images.slice(n, n + 1).reshape({H, W, images.size(3)});
    draw_image(c, x0 + (cell_w - static_cast<int>(W) * scale) / 2, y0, img, range, scale);
    if (static_cast<size_t>(n) >= captions.size()) continue;
    const std::string& cap = captions[static_cast<size_t>(n)];
    const size_t nl = cap.find('\n');
    const std::string lines[2] = {cap.substr(0, nl), nl == std::string::npos ? "" : cap.substr(nl + 1)};
    for (int k = 0; k < 2; ++k)
      draw_text(c, x0 + (cell_w - text_width(lines[k], kText)) / 2, y0 + static_cast<int>(H) * scale + 6 + k * (kLine + 6), lines[k],
                kBlack, kText);
  }
  return c;
}

}  // namespace kiln
