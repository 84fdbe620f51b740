#include "data/augment/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include "core/io/png_image.h"

namespace kiln {

namespace {

ImageBatchDims batch_dims(const Tensor& x, const char* op) {
  check_arg(x.defined(), op, "undefined input tensor");
  check_arg(x.dim() == 4, op, "expected images [N,H,W,C], got " + shape_str(x.shape()));
  return {x.size(0), x.size(1), x.size(2), x.size(3)};
}

// Index i of the input extended beyond [0, n) by the fill mode; -1 where the constant fills.
template <FillMode Mode>
inline int64_t extend_index(int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if constexpr (Mode == FillMode::constant) {
    return -1;
  } else if constexpr (Mode == FillMode::nearest) {
    return i < 0 ? 0 : n - 1;
  } else if constexpr (Mode == FillMode::wrap) {
    const int64_t r = i % n;
    return r < 0 ? r + n : r;
  } else {  // reflect: the extension repeats with period 2n, the second half mirrored
    const int64_t period = 2 * n;
    int64_t r = i % period;
    if (r < 0) r += period;
    return r < n ? r : period - 1 - r;
  }
}

// Rows [row_begin, row_end) of one output image resampled from src through map.
template <FillMode Mode>
void resample_rows(const float* src, float* dst, int64_t h, int64_t w, int64_t c,
                   int64_t row_begin, int64_t row_end, const AffineMap& m,
                   const SamplingOptions& s) {
  const float fill = s.fill_value;
  // Past this distance the coordinate cannot map back inside with any mode worth computing;
  // the bound keeps the float -> int64 conversion defined.
  const float far = 1e9f;
  for (int64_t y = row_begin; y < row_end; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      float* out = dst + (y * w + x) * c;
      const float xf = static_cast<float>(x), yf = static_cast<float>(y);
      const float x_in = m.a0 * xf + m.a1 * yf + m.a2;
      const float y_in = m.b0 * xf + m.b1 * yf + m.b2;
      const bool usable = std::isfinite(x_in) && std::isfinite(y_in) && std::fabs(x_in) < far &&
                          std::fabs(y_in) < far;
      // TensorFlow's kernel (which Keras uses) fills a whole position lying outside
      // [0, n-1] in constant mode, rather than blending the fill into the edge pixels.
      const bool outside = x_in < 0 || y_in < 0 || x_in > static_cast<float>(w - 1) ||
                           y_in > static_cast<float>(h - 1);
      if (!usable || (Mode == FillMode::constant && outside)) {
        std::fill(out, out + c, fill);
        continue;
      }
      if (s.interpolation == Interpolation::nearest) {
        // std::round (half away from zero) as in TensorFlow; symmetric rounding keeps
        // reflect mode symmetric.
        const int64_t ix = extend_index<Mode>(static_cast<int64_t>(std::round(x_in)), w);
        const int64_t iy = extend_index<Mode>(static_cast<int64_t>(std::round(y_in)), h);
        if (ix < 0 || iy < 0) {
          std::fill(out, out + c, fill);
        } else {
          std::memcpy(out, src + (iy * w + ix) * c, static_cast<size_t>(c) * sizeof(float));
        }
        continue;
      }
      const float x_floor = std::floor(x_in), y_floor = std::floor(y_in);
      const float wx = x_in - x_floor, wy = y_in - y_floor;
      const int64_t x0 = static_cast<int64_t>(x_floor), y0 = static_cast<int64_t>(y_floor);
      // Bilinear on the extended image: mapping each neighbour's index equals TF's mapping
      // of the coordinate for reflect and nearest, and makes wrap truly periodic.
      const int64_t cols[2] = {extend_index<Mode>(x0, w), extend_index<Mode>(x0 + 1, w)};
      const int64_t rows[2] = {extend_index<Mode>(y0, h), extend_index<Mode>(y0 + 1, h)};
      const float wcol[2] = {1.0f - wx, wx};
      const float wrow[2] = {1.0f - wy, wy};
      std::fill(out, out + c, 0.0f);
      for (int r = 0; r < 2; ++r) {
        for (int q = 0; q < 2; ++q) {
          const float weight = wrow[r] * wcol[q];
          if (rows[r] < 0 || cols[q] < 0) {
            // Only reached in constant mode on the last row/column, with weight 0; skipping
            // keeps an infinite fill value from turning the pixel into NaN.
            if (weight != 0.0f) {
              for (int64_t k = 0; k < c; ++k) out[k] += weight * fill;
            }
            continue;
          }
          const float* p = src + (rows[r] * w + cols[q]) * c;
          for (int64_t k = 0; k < c; ++k) out[k] += weight * p[k];
        }
      }
    }
  }
}

template <FillMode Mode>
void affine_batch(const float* src, float* dst, const ImageBatchDims& d,
                  const std::vector<AffineMap>& maps, const SamplingOptions& s) {
  const int64_t image = d.image_numel();
  // Each (image, row) is written by exactly one iteration from src alone, so the result is
  // the same for any thread count.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < d.n; ++i) {
    for (int64_t y = 0; y < d.h; ++y) {
      resample_rows<Mode>(src + i * image, dst + i * image, d.h, d.w, d.c, y, y + 1, maps[i], s);
    }
  }
}

void affine_raw(const float* src, float* dst, const ImageBatchDims& d,
                const std::vector<AffineMap>& maps, const SamplingOptions& s) {
  switch (s.fill_mode) {
    case FillMode::reflect: affine_batch<FillMode::reflect>(src, dst, d, maps, s); break;
    case FillMode::constant: affine_batch<FillMode::constant>(src, dst, d, maps, s); break;
    case FillMode::nearest: affine_batch<FillMode::nearest>(src, dst, d, maps, s); break;
    case FillMode::wrap: affine_batch<FillMode::wrap>(src, dst, d, maps, s); break;
  }
}

void flip_raw(const float* src, float* dst, const ImageBatchDims& d,
              const std::vector<RandomFlip::Flips>& flips) {
  const int64_t image = d.image_numel();
  const size_t pixel_bytes = static_cast<size_t>(d.c) * sizeof(float);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < d.n; ++i) {
    for (int64_t y = 0; y < d.h; ++y) {
      const int64_t sy = flips[i].vertical ? d.h - 1 - y : y;
      const float* in_row = src + i * image + sy * d.w * d.c;
      float* out_row = dst + i * image + y * d.w * d.c;
      if (!flips[i].horizontal) {
        std::memcpy(out_row, in_row, pixel_bytes * static_cast<size_t>(d.w));
        continue;
      }
      for (int64_t x = 0; x < d.w; ++x) {
        std::memcpy(out_row + x * d.c, in_row + (d.w - 1 - x) * d.c, pixel_bytes);
      }
    }
  }
}

void brightness_raw(const float* src, float* dst, const ImageBatchDims& d,
                    const std::vector<float>& deltas, float lo, float hi) {
  const int64_t image = d.image_numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < d.n; ++i) {
    const float delta = deltas[i];
    const float* in = src + i * image;
    float* out = dst + i * image;
    for (int64_t k = 0; k < image; ++k) out[k] = std::clamp(in[k] + delta, lo, hi);
  }
}

std::string range_str(const FactorRange& f) {
  std::ostringstream os;
  os << "(" << f.lower << ", " << f.upper << ")";
  return os.str();
}

std::string sampling_str(const SamplingOptions& s) {
  std::ostringstream os;
  os << "fill_mode=" << fill_mode_name(s.fill_mode)
     << ", interpolation=" << interpolation_name(s.interpolation);
  if (s.fill_mode == FillMode::constant) os << ", fill_value=" << s.fill_value;
  return os.str();
}

void check_unit_range(const FactorRange& f, const char* op, const char* what) {
  check_arg(f.lower >= -1.0f && f.upper <= 1.0f, op,
            std::string(what) + " " + range_str(f) + " must lie in [-1, 1]");
}

}  // namespace

// --- names ----------------------------------------------------------------------------------

const char* fill_mode_name(FillMode mode) {
  switch (mode) {
    case FillMode::reflect: return "reflect";
    case FillMode::constant: return "constant";
    case FillMode::nearest: return "nearest";
    case FillMode::wrap: return "wrap";
  }
  return "?";
}

const char* interpolation_name(Interpolation interpolation) {
  return interpolation == Interpolation::bilinear ? "bilinear" : "nearest";
}

FillMode parse_fill_mode(const std::string& name) {
  for (FillMode m : {FillMode::reflect, FillMode::constant, FillMode::nearest, FillMode::wrap}) {
    if (name == fill_mode_name(m)) return m;
  }
  throw std::invalid_argument("fill_mode: unknown mode '" + name +
                              "', expected reflect, constant, nearest or wrap");
}

Interpolation parse_interpolation(const std::string& name) {
  if (name == "bilinear") return Interpolation::bilinear;
  if (name == "nearest") return Interpolation::nearest;
  throw std::invalid_argument("interpolation: unknown mode '" + name +
                              "', expected bilinear or nearest");
}

const char* flip_mode_name(FlipMode mode) {
  switch (mode) {
    case FlipMode::horizontal: return "horizontal";
    case FlipMode::vertical: return "vertical";
    case FlipMode::horizontal_and_vertical: return "horizontal_and_vertical";
  }
  return "?";
}

FlipMode parse_flip_mode(const std::string& name) {
  for (FlipMode m : {FlipMode::horizontal, FlipMode::vertical, FlipMode::horizontal_and_vertical}) {
    if (name == flip_mode_name(m)) return m;
  }
  throw std::invalid_argument("RandomFlip: unknown mode '" + name +
                              "', expected horizontal, vertical or horizontal_and_vertical");
}

// --- maps and deterministic transforms ------------------------------------------------------

AffineMap rotation_map(double angle, int64_t height, int64_t width) {
  // Output pixel p samples centre + R(angle) (p - centre). With y pointing down this turns the
  // picture counter-clockwise for a positive angle (Keras' convention and matrix).
  const double c = std::cos(angle), s = std::sin(angle);
  const double cx = (static_cast<double>(width) - 1.0) / 2.0;
  const double cy = (static_cast<double>(height) - 1.0) / 2.0;
  AffineMap m;
  m.a0 = static_cast<float>(c);
  m.a1 = static_cast<float>(-s);
  m.a2 = static_cast<float>(cx - c * cx + s * cy);
  m.b0 = static_cast<float>(s);
  m.b1 = static_cast<float>(c);
  m.b2 = static_cast<float>(cy - s * cx - c * cy);
  return m;
}

AffineMap translation_map(double dy, double dx) {
  AffineMap m;
  m.a2 = static_cast<float>(-dx);
  m.b2 = static_cast<float>(-dy);
  return m;
}

Tensor affine_transform(const Tensor& x, const std::vector<AffineMap>& maps,
                        const SamplingOptions& sampling) {
  const ImageBatchDims d = batch_dims(x, "affine_transform");
  check_arg(static_cast<int64_t>(maps.size()) == d.n, "affine_transform",
            std::to_string(maps.size()) + " maps for images " + shape_str(x.shape()));
  Tensor out = Tensor::empty(x.shape());
  affine_raw(x.data(), out.data(), d, maps, sampling);
  return out;
}

Tensor rotate(const Tensor& x, double angle, const SamplingOptions& sampling) {
  const ImageBatchDims d = batch_dims(x, "rotate");
  return affine_transform(x, std::vector<AffineMap>(d.n, rotation_map(angle, d.h, d.w)),
                          sampling);
}

Tensor translate(const Tensor& x, double dy, double dx, const SamplingOptions& sampling) {
  const ImageBatchDims d = batch_dims(x, "translate");
  return affine_transform(x, std::vector<AffineMap>(d.n, translation_map(dy, dx)), sampling);
}

Tensor flip(const Tensor& x, bool horizontal, bool vertical) {
  const ImageBatchDims d = batch_dims(x, "flip");
  Tensor out = Tensor::empty(x.shape());
  flip_raw(x.data(), out.data(), d, std::vector<RandomFlip::Flips>(d.n, {horizontal, vertical}));
  return out;
}

Tensor adjust_brightness(const Tensor& x, float delta, std::pair<float, float> value_range) {
  const ImageBatchDims d = batch_dims(x, "adjust_brightness");
  check_arg(value_range.first <= value_range.second, "adjust_brightness",
            "value_range lower bound is above the upper bound");
  Tensor out = Tensor::empty(x.shape());
  brightness_raw(x.data(), out.data(), d, std::vector<float>(d.n, delta), value_range.first,
                 value_range.second);
  return out;
}

// --- random layers --------------------------------------------------------------------------

FactorRange::FactorRange(float factor) : lower(-std::fabs(factor)), upper(std::fabs(factor)) {
  check_arg(std::isfinite(factor), "FactorRange", "factor is not finite");
}

FactorRange::FactorRange(float a, float b) : lower(std::min(a, b)), upper(std::max(a, b)) {
  check_arg(std::isfinite(a) && std::isfinite(b), "FactorRange", "factor is not finite");
}

Tensor AugmentationStep::operator()(const Tensor& x, Generator& rng, bool training) const {
  const ImageBatchDims d = batch_dims(x, describe().c_str());
  if (!training) return x;
  Tensor out = Tensor::empty(x.shape());
  transform(x.data(), out.data(), d, rng);
  return out;
}

RandomRotation::RandomRotation(FactorRange factor, SamplingOptions sampling)
    : factor_(factor), sampling_(sampling) {
  check_unit_range(factor_, "RandomRotation", "factor");
}

std::vector<double> RandomRotation::draw_angles(int64_t n, Generator& rng) const {
  constexpr double two_pi = 2.0 * std::numbers::pi;
  std::vector<double> angles(static_cast<size_t>(n));
  for (double& a : angles) a = two_pi * static_cast<double>(rng.uniform(factor_.lower, factor_.upper));
  return angles;
}

std::string RandomRotation::describe() const {
  return "RandomRotation(factor=" + range_str(factor_) + ", " + sampling_str(sampling_) + ")";
}

void RandomRotation::transform(const float* src, float* dst, const ImageBatchDims& d,
                               Generator& rng) const {
  const std::vector<double> angles = draw_angles(d.n, rng);
  std::vector<AffineMap> maps(angles.size());
  for (size_t i = 0; i < angles.size(); ++i) maps[i] = rotation_map(angles[i], d.h, d.w);
  affine_raw(src, dst, d, maps, sampling_);
}

RandomTranslation::RandomTranslation(FactorRange height_factor, FactorRange width_factor,
                                     SamplingOptions sampling)
    : height_factor_(height_factor), width_factor_(width_factor), sampling_(sampling) {
  check_unit_range(height_factor_, "RandomTranslation", "height_factor");
  check_unit_range(width_factor_, "RandomTranslation", "width_factor");
}

std::vector<std::pair<double, double>> RandomTranslation::draw_shifts(int64_t n, int64_t height,
                                                                      int64_t width,
                                                                      Generator& rng) const {
  std::vector<std::pair<double, double>> shifts(static_cast<size_t>(n));
  for (auto& [dy, dx] : shifts) {
    dy = static_cast<double>(rng.uniform(height_factor_.lower, height_factor_.upper)) *
         static_cast<double>(height);
    dx = static_cast<double>(rng.uniform(width_factor_.lower, width_factor_.upper)) *
         static_cast<double>(width);
  }
  return shifts;
}

std::string RandomTranslation::describe() const {
  return "RandomTranslation(height_factor=" + range_str(height_factor_) +
         ", width_factor=" + range_str(width_factor_) + ", " + sampling_str(sampling_) + ")";
}

void RandomTranslation::transform(const float* src, float* dst, const ImageBatchDims& d,
                                  Generator& rng) const {
  const auto shifts = draw_shifts(d.n, d.h, d.w, rng);
  std::vector<AffineMap> maps(shifts.size());
  for (size_t i = 0; i < shifts.size(); ++i) maps[i] = translation_map(shifts[i].first, shifts[i].second);
  affine_raw(src, dst, d, maps, sampling_);
}

RandomBrightness::RandomBrightness(FactorRange factor, std::pair<float, float> value_range)
    : factor_(factor), value_range_(value_range) {
  check_unit_range(factor_, "RandomBrightness", "factor");
  if (value_range_.first > value_range_.second) std::swap(value_range_.first, value_range_.second);
  check_arg(std::isfinite(value_range_.first) && std::isfinite(value_range_.second) &&
                value_range_.first < value_range_.second,
            "RandomBrightness", "value_range needs two different finite bounds");
}

std::vector<float> RandomBrightness::draw_deltas(int64_t n, Generator& rng) const {
  const float span = value_range_.second - value_range_.first;
  std::vector<float> deltas(static_cast<size_t>(n));
  for (float& delta : deltas) delta = rng.uniform(factor_.lower, factor_.upper) * span;
  return deltas;
}

std::string RandomBrightness::describe() const {
  std::ostringstream os;
  os << "RandomBrightness(factor=" << range_str(factor_) << ", value_range=("
     << value_range_.first << ", " << value_range_.second << "))";
  return os.str();
}

void RandomBrightness::transform(const float* src, float* dst, const ImageBatchDims& d,
                                 Generator& rng) const {
  brightness_raw(src, dst, d, draw_deltas(d.n, rng), value_range_.first, value_range_.second);
}

RandomFlip::RandomFlip(FlipMode mode) : mode_(mode) {}

std::vector<RandomFlip::Flips> RandomFlip::draw_flips(int64_t n, Generator& rng) const {
  const bool h = mode_ != FlipMode::vertical;
  const bool v = mode_ != FlipMode::horizontal;
  std::vector<Flips> flips(static_cast<size_t>(n));
  for (Flips& f : flips) {
    if (h) f.horizontal = rng.uniform() < 0.5f;
    if (v) f.vertical = rng.uniform() < 0.5f;
  }
  return flips;
}

std::string RandomFlip::describe() const {
  return std::string("RandomFlip(mode=") + flip_mode_name(mode_) + ")";
}

void RandomFlip::transform(const float* src, float* dst, const ImageBatchDims& d,
                           Generator& rng) const {
  flip_raw(src, dst, d, draw_flips(d.n, rng));
}

// --- pipeline -------------------------------------------------------------------------------

Tensor Augmentation::operator()(const Tensor& x, Generator& rng, bool training, Tensor out) const {
  const ImageBatchDims d = batch_dims(x, "Augmentation");
  if (!training || steps_.empty()) return x;
  if (out.defined()) {
    check_arg(out.shape() == x.shape(), "Augmentation",
              "output buffer " + shape_str(out.shape()) + " does not match images " +
                  shape_str(x.shape()));
    const float* xb = x.data();
    const float* ob = out.data();
    check_arg(ob + out.numel() <= xb || xb + x.numel() <= ob, "Augmentation",
              "output buffer overlaps the input images");
  } else {
    out = Tensor::empty(x.shape());
  }
  // Steps ping-pong between out and one scratch buffer, ordered so the last lands in out.
  Tensor scratch = steps_.size() > 1 ? Tensor::empty(x.shape()) : Tensor();
  const float* src = x.data();
  for (size_t i = 0; i < steps_.size(); ++i) {
    const bool to_out = (steps_.size() - 1 - i) % 2 == 0;
    float* dst = to_out ? out.data() : scratch.data();
    steps_[i]->transform(src, dst, d, rng);
    src = dst;
  }
  return out;
}

Tensor Augmentation::apply(const Tensor& x, uint64_t seed) const {
  Generator rng(seed);
  return (*this)(x, rng, true);
}

std::string Augmentation::describe() const {
  std::string text;
  for (const auto& s : steps_) text += s->describe() + "\n";
  return text;
}

void write_augmentation_grid(const Tensor& images, const Augmentation& aug, int copies,
                             uint64_t seed, std::pair<float, float> value_range,
                             const std::string& png_path, int scale) {
  const ImageBatchDims d = batch_dims(images, "write_augmentation_grid");
  check_arg(copies >= 0, "write_augmentation_grid", "copies must be >= 0");
  const int64_t cols = 1 + copies;
  // Cell (row i, column k) of the grid is image i of pass k (pass 0: the originals).
  Tensor cells = Tensor::empty({d.n * cols, d.h, d.w, d.c});
  const int64_t image = d.image_numel();
  Generator rng(seed);
  for (int64_t k = 0; k < cols; ++k) {
    const Tensor pass = k == 0 ? images : aug(images, rng, true);
    const float* p = pass.data();
    float* dst = cells.data();
    for (int64_t i = 0; i < d.n; ++i) {
      std::memcpy(dst + (i * cols + k) * image, p + i * image,
                  static_cast<size_t>(image) * sizeof(float));
    }
  }
  ImageGridOptions options;
  options.cols = static_cast<int>(cols);
  options.scale = scale;
  options.value_range = value_range;
  write_image_grid_png(png_path, cells, options);
}

}  // namespace kiln
