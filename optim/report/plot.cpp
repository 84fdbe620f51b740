#include "optim/report/plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

namespace kiln {
namespace {

// --- the 5x7 font --------------------------------------------------------------------------
// Each glyph is 7 rows, top to bottom; bit 4 of a row is the leftmost of its 5 pixels. Capitals
// and digits fill rows 0-6; lower-case letters have their x-height in rows 2-6. A descending
// letter (g p q y) is drawn 2 rows lower, so its tail hangs below the baseline: a line of text
// is 7 pixels tall plus 2 for descenders, which layouts leave room for.
struct Glyph {
  char c;
  std::array<uint8_t, 7> rows;
  bool descends = false;
};

constexpr Glyph kFont[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}},
    {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}},
    {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}},
    {'g', {0x0F, 0x11, 0x11, 0x0F, 0x01, 0x11, 0x0E}, true},
    {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}},
    {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}},
    {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'p', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, true},
    {'q', {0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01, 0x01}, true},
    {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}},
    {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}},
    {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'w', {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}},
    {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0x11, 0x11, 0x11, 0x0F, 0x01, 0x11, 0x0E}, true},
    {'z', {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {';', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}},
    {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
    {'*', {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}},
    {'\'', {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}},
    {'!', {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
};
// Drawn for a character the font lacks, so a missing glyph is visible rather than silent.
constexpr std::array<uint8_t, 7> kUnknownGlyph = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};

constexpr int kGlyphW = 5, kGlyphH = 7, kAdvance = 6;

const Glyph& glyph(char c) {
  // Built once: 128 slots, so drawing is a table look-up per character.
  static const std::array<const Glyph*, 128> table = [] {
    std::array<const Glyph*, 128> t{};
    for (const Glyph& g : kFont) t[static_cast<unsigned char>(g.c)] = &g;
    return t;
  }();
  static const Glyph unknown{'\0', kUnknownGlyph};
  const auto u = static_cast<unsigned char>(c);
  return u < 128 && table[u] ? *table[u] : unknown;
}

// --- plotting ------------------------------------------------------------------------------

constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kLegendFrame{200, 200, 200};

struct Axis {
  double lo = 0, hi = 1, step = 1;
  int decimals = 0;
};

// 1, 2 or 5 times a power of ten, near range / target.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

Axis value_axis(double lo, double hi) {
  if (!(lo <= hi)) lo = 0, hi = 1;  // no finite data at all
  if (hi - lo < 1e-12) {             // one value: open up a band around it
    const double pad = std::max(std::abs(lo) * 0.05, 0.05);
    lo -= pad;
    hi += pad;
  }
  const double pad = (hi - lo) * 0.06;  // keep markers off the frame
  Axis a{lo - pad, hi + pad, 0, 0};
  a.step = nice_step(a.hi - a.lo, 5);
  a.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(a.step) + 1e-9)));
  return a;
}

Axis epoch_axis(int64_t epochs) {
  const double last = static_cast<double>(std::max<int64_t>(epochs, 2));
  const double pad = (last - 1.0) * 0.03;
  Axis a{1.0 - pad, last + pad, std::max(1.0, nice_step(last - 1.0, 8)), 0};
  return a;
}

std::string tick_text(double v, const Axis& a) {
  if (std::abs(v) < a.step * 1e-6) v = 0.0;  // no "-0.00"
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", a.decimals, v);
  return buf;
}

// The ticks of an axis: multiples of its step inside [lo, hi].
std::vector<double> ticks(const Axis& a) {
  std::vector<double> t;
  for (double v = std::ceil(a.lo / a.step - 1e-9) * a.step; v <= a.hi + a.step * 1e-9; v += a.step)
    t.push_back(v);
  return t;
}

// A 2-pixel line: the Bresenham line and its neighbour below and to the right.
void thick_line(RgbCanvas& c, int x0, int y0, int x1, int y1, Rgb color) {
  c.draw_line(x0, y0, x1, y1, color);
  c.draw_line(x0 + 1, y0, x1 + 1, y1, color);
  c.draw_line(x0, y0 + 1, x1, y1 + 1, color);
}

void marker(RgbCanvas& c, int x, int y, Rgb color, bool square, int size) {
  const int r = size / 2;
  if (square) {
    c.fill_rect(x - r - 1, y - r - 1, 2 * r + 3, 2 * r + 3, kBlack);
    c.fill_rect(x - r, y - r, 2 * r + 1, 2 * r + 1, color);
    return;
  }
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx)
      if (dx * dx + dy * dy <= r * r + r) c.set_pixel(x + dx, y + dy, color);
}

struct Rect {
  int x0, y0, x1, y1;  // x1, y1 exclusive
  bool contains(int x, int y) const { return x >= x0 && x < x1 && y >= y0 && y < y1; }
};

}  // namespace

void draw_line_panel(RgbCanvas& c, int left0, int top0, int width, int height, const PanelSpec& spec,
                const std::vector<PlotSeries>& series, int s) {
  const std::string& title = spec.title;
  const std::string& y_label = spec.y_label;
  const int ch = kGlyphH * s;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  double xlo = lo, xhi = hi;
  for (const PlotSeries& se : series)
    for (size_t i = 0; i < se.y.size(); ++i)
      if (std::isfinite(se.y[i]) && std::isfinite(se.x[i]))
        lo = std::min(lo, se.y[i]), hi = std::max(hi, se.y[i]), xlo = std::min(xlo, se.x[i]), xhi = std::max(xhi, se.x[i]);
  const Axis unit{-0.02, 1.02, 0.2, 1};
  const Axis ya = spec.unit_range ? unit : value_axis(lo, hi);
  const Axis xa = spec.epochs > 0 ? epoch_axis(spec.epochs) : spec.unit_range ? unit : value_axis(xlo, xhi);
  const std::vector<double> yt = ticks(ya), xt = ticks(xa);
  int label_w = 0;
  for (double v : yt) label_w = std::max(label_w, text_width(tick_text(v, ya), s));

  const Rect plot{left0 + 10 + ch + 10 + label_w + 8, top0 + 10 + ch + 12,
                  left0 + width - 16, top0 + height - (8 + ch + 10 + ch + 10)};
  auto px = [&](double x) {
    return plot.x0 + static_cast<int>(std::lround((x - xa.lo) / (xa.hi - xa.lo) * (plot.x1 - 1 - plot.x0)));
  };
  auto py = [&](double y) {
    return plot.y1 - 1 - static_cast<int>(std::lround((y - ya.lo) / (ya.hi - ya.lo) * (plot.y1 - 1 - plot.y0)));
  };

  // Grid and tick labels first, so the curves are drawn over them.
  for (double v : yt) {
    const int y = py(v);
    c.draw_line(plot.x0, y, plot.x1 - 1, y, kGrid);
    c.draw_line(plot.x0 - 5, y, plot.x0 - 1, y, kBlack);
    const std::string t = tick_text(v, ya);
    draw_text(c, plot.x0 - 8 - text_width(t, s), y - ch / 2, t, kBlack, s);
  }
  for (double v : xt) {
    const int x = px(v);
    c.draw_line(x, plot.y0, x, plot.y1 - 1, kGrid);
    c.draw_line(x, plot.y1, x, plot.y1 + 4, kBlack);
    const std::string t = tick_text(v, xa);
    draw_text(c, x - text_width(t, s) / 2, plot.y1 + 8, t, kBlack, s);
  }
  // Frame.
  c.draw_line(plot.x0, plot.y0, plot.x1 - 1, plot.y0, kBlack);
  c.draw_line(plot.x0, plot.y1 - 1, plot.x1 - 1, plot.y1 - 1, kBlack);
  c.draw_line(plot.x0, plot.y0, plot.x0, plot.y1 - 1, kBlack);
  c.draw_line(plot.x1 - 1, plot.y0, plot.x1 - 1, plot.y1 - 1, kBlack);
  // Title, x label, y label (turned, reading upwards, like matplotlib's).
  draw_text(c, (plot.x0 + plot.x1 - text_width(title, s)) / 2, top0 + 10, title, kBlack, s);
  draw_text(c, (plot.x0 + plot.x1 - text_width(spec.x_label, s)) / 2, plot.y1 + 8 + ch + 10, spec.x_label,
            kBlack, s);
  draw_text(c, left0 + 10, (plot.y0 + plot.y1 - text_width(y_label, s)) / 2, y_label, kBlack, s,
            /*vertical=*/true);

  // Curves: consecutive finite points joined; the points where the curves pass are kept for
  // placing the legend where it covers the fewest of them.
  std::vector<std::pair<int, int>> covered;
  for (const PlotSeries& se : series) {
    bool have_prev = false;
    int x_prev = 0, y_prev = 0;
    for (size_t i = 0; i < se.x.size(); ++i) {
      if (!std::isfinite(se.y[i])) {
        have_prev = false;
        continue;
      }
      const int x = px(se.x[i]), y = py(se.y[i]);
      if (have_prev) {
        thick_line(c, x_prev, y_prev, x, y, se.color);
        const int steps = std::max(std::abs(x - x_prev), std::abs(y - y_prev)) / 4 + 1;
        for (int k = 0; k <= steps; ++k)
          covered.emplace_back(x_prev + (x - x_prev) * k / steps, y_prev + (y - y_prev) * k / steps);
      }
      covered.emplace_back(x, y);
      have_prev = true;
      x_prev = x;
      y_prev = y;
    }
  }
  for (const PlotSeries& se : series) {
    // Dots on a long training curve would merge into a smear; squares always show, because
    // validation runs only every few epochs.
    if (!se.squares && se.x.size() > 40) continue;
    for (size_t i = 0; i < se.x.size(); ++i)
      if (std::isfinite(se.y[i])) marker(c, px(se.x[i]), py(se.y[i]), se.color, se.squares, 3 * s);
  }

  // Legend: a framed box in the corner the curves cross least.
  std::vector<const PlotSeries*> shown;
  for (const PlotSeries& se : series)
    if (!se.x.empty()) shown.push_back(&se);
  if (shown.empty()) return;
  int name_w = 0;
  for (const PlotSeries* se : shown) name_w = std::max(name_w, text_width(se->name, s));
  const int swatch = 12 * s, row_h = ch + 4 * s;
  const int box_w = 6 * s + swatch + 4 * s + name_w + 6 * s;
  const int box_h = static_cast<int>(shown.size()) * row_h + 4 * s;
  const int gap = 8;
  const std::array<Rect, 4> corners = {
      Rect{plot.x1 - gap - box_w, plot.y0 + gap, plot.x1 - gap, plot.y0 + gap + box_h},  // upper right
      Rect{plot.x1 - gap - box_w, plot.y1 - gap - box_h, plot.x1 - gap, plot.y1 - gap},  // lower right
      Rect{plot.x0 + gap, plot.y0 + gap, plot.x0 + gap + box_w, plot.y0 + gap + box_h},  // upper left
      Rect{plot.x0 + gap, plot.y1 - gap - box_h, plot.x0 + gap + box_w, plot.y1 - gap}}; // lower left
  size_t best = 0, best_hits = std::numeric_limits<size_t>::max();
  for (size_t k = 0; k < corners.size(); ++k) {
    size_t hits = 0;
    for (const auto& [x, y] : covered) hits += corners[k].contains(x, y);
    if (hits < best_hits) best = k, best_hits = hits;
  }
  const Rect box = corners[best];
  c.fill_rect(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0, {255, 255, 255});
  c.draw_line(box.x0, box.y0, box.x1 - 1, box.y0, kLegendFrame);
  c.draw_line(box.x0, box.y1 - 1, box.x1 - 1, box.y1 - 1, kLegendFrame);
  c.draw_line(box.x0, box.y0, box.x0, box.y1 - 1, kLegendFrame);
  c.draw_line(box.x1 - 1, box.y0, box.x1 - 1, box.y1 - 1, kLegendFrame);
  for (size_t i = 0; i < shown.size(); ++i) {
    const int y_mid = box.y0 + 2 * s + static_cast<int>(i) * row_h + row_h / 2;
    const int sx0 = box.x0 + 6 * s, sx1 = sx0 + swatch;
    thick_line(c, sx0, y_mid, sx1, y_mid, shown[i]->color);
    marker(c, (sx0 + sx1) / 2, y_mid, shown[i]->color, shown[i]->squares, 3 * s);
    draw_text(c, sx1 + 4 * s, y_mid - ch / 2, shown[i]->name, kBlack, s);
  }
}

int text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (static_cast<int>(text.size()) * kAdvance - 1) * scale;
}

int draw_text(RgbCanvas& canvas, int x, int y, const std::string& text, Rgb color, int scale,
              bool vertical) {
  const int total = text_width(text, scale);
  for (size_t i = 0; i < text.size(); ++i) {
    const Glyph& g = glyph(text[i]);
    const int drop = g.descends ? 2 : 0;
    for (int gy = 0; gy < kGlyphH; ++gy) {
      for (int gx = 0; gx < kGlyphW; ++gx) {
        if (!(g.rows[gy] & (0x10 >> gx))) continue;
        const int along = (static_cast<int>(i) * kAdvance + gx) * scale;  // along the reading direction
        const int across = (gy + drop) * scale;
        if (vertical)  // turned counter-clockwise: the tops of the letters face left
          canvas.fill_rect(x + across, y + total - along - scale, scale, scale, color);
        else
          canvas.fill_rect(x + along, y + across, scale, scale, color);
      }
    }
  }
  return total;
}

}  // namespace kiln
