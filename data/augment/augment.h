// Keras-style image augmentation: RandomRotation, RandomTranslation, RandomBrightness,
// RandomFlip, and an Augmentation pipeline that applies them in order.
//
// Images are NHWC float tensors [N,H,W,C]. Every layer acts only in training; in inference it
// returns its input unchanged. In training a layer first draws the parameters of every image
// from the caller's Generator, one image after the other, and only then transforms the images
// in parallel, so the result depends on the seed alone and not on the thread count.
//
// Geometry follows Keras 3's layers on the TensorFlow backend (ImageProjectiveTransformV3):
// an output pixel (x, y) samples the input at a mapped position (x_in, y_in), pixel centres at
// integer coordinates, the rotation centre at ((W-1)/2, (H-1)/2). Augmentation is not
// differentiated: outputs are fresh leaves.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/runtime/random.h"
#include "core/tensor.h"

namespace kiln {

// How positions outside the image are filled (Keras names, input "a b c d"):
//   reflect  d c b a | a b c d | d c b a   (mirrored about the edge of the last pixel)
//   constant k k k k | a b c d | k k k k   (k = SamplingOptions::fill_value)
//   nearest  a a a a | a b c d | d d d d
//   wrap     a b c d | a b c d | a b c d
enum class FillMode { reflect, constant, nearest, wrap };
enum class Interpolation { bilinear, nearest };

struct SamplingOptions {
  FillMode fill_mode = FillMode::reflect;
  Interpolation interpolation = Interpolation::bilinear;
  float fill_value = 0.0f;  // only for FillMode::constant
};

// "reflect", "constant", "nearest", "wrap" / "bilinear", "nearest"; parse_* throw
// std::invalid_argument on any other name.
const char* fill_mode_name(FillMode mode);
const char* interpolation_name(Interpolation interpolation);
FillMode parse_fill_mode(const std::string& name);
Interpolation parse_interpolation(const std::string& name);

// Where output pixel (x, y) samples the input: x_in = a0 x + a1 y + a2, y_in = b0 x + b1 y + b2.
struct AffineMap {
  float a0 = 1, a1 = 0, a2 = 0;
  float b0 = 0, b1 = 1, b2 = 0;
};
// Turn by `angle` radians about the image centre; positive turns the picture counter-clockwise
// as displayed (row 0 at the top), like Keras.
AffineMap rotation_map(double angle, int64_t height, int64_t width);
// Shift the picture down by dy and right by dx pixels.
AffineMap translation_map(double dy, double dx);

// --- deterministic transforms (what the random layers run once the parameters are drawn) ---
// x: [N,H,W,C], maps: N entries -> [N,H,W,C]; image i is resampled through maps[i].
Tensor affine_transform(const Tensor& x, const std::vector<AffineMap>& maps,
                        const SamplingOptions& sampling = {});
// x: [N,H,W,C] -> [N,H,W,C], every image turned by `angle` radians (see rotation_map).
Tensor rotate(const Tensor& x, double angle, const SamplingOptions& sampling = {});
// x: [N,H,W,C] -> [N,H,W,C], every image shifted down by dy and right by dx pixels.
Tensor translate(const Tensor& x, double dy, double dx, const SamplingOptions& sampling = {});
// x: [N,H,W,C] -> [N,H,W,C]; horizontal mirrors left-right, vertical top-bottom.
Tensor flip(const Tensor& x, bool horizontal, bool vertical);
// x: [N,H,W,C] -> [N,H,W,C], clamp(x + delta, lo, hi) with (lo, hi) = value_range.
Tensor adjust_brightness(const Tensor& x, float delta, std::pair<float, float> value_range);

// A random range [lower, upper]. A single number f means [-|f|, |f|]; a pair is sorted.
struct FactorRange {
  float lower = 0, upper = 0;
  FactorRange(float factor);  // NOLINT(google-explicit-constructor): RandomRotation(0.05) reads well
  FactorRange(float lower, float upper);
};

// Sizes of a batch of NHWC images.
struct ImageBatchDims {
  int64_t n = 0, h = 0, w = 0, c = 0;
  int64_t image_numel() const { return h * w * c; }
};

// One random augmentation layer.
class AugmentationStep {
 public:
  virtual ~AugmentationStep() = default;
  // x: [N,H,W,C] -> [N,H,W,C]. training: draw every image's parameters from rng, then
  // transform. Inference: returns x itself and draws nothing.
  Tensor operator()(const Tensor& x, Generator& rng, bool training) const;
  // The layer's configuration, e.g. "RandomFlip(mode=horizontal)".
  virtual std::string describe() const = 0;
  // Training-mode transform of raw buffers: src and dst hold dims.n images of
  // dims.image_numel() floats each and must not overlap.
  virtual void transform(const float* src, float* dst, const ImageBatchDims& dims,
                         Generator& rng) const = 0;
};

// Turns each image by an angle drawn uniformly from [lower * 2pi, upper * 2pi]; the factor
// lies in [-1, 1] (fractions of a full turn).
class RandomRotation : public AugmentationStep {
 public:
  explicit RandomRotation(FactorRange factor, SamplingOptions sampling = {});
  // n angles in radians, drawn in order.
  std::vector<double> draw_angles(int64_t n, Generator& rng) const;
  std::string describe() const override;
  void transform(const float* src, float* dst, const ImageBatchDims& dims,
                 Generator& rng) const override;
  const FactorRange& factor() const { return factor_; }

 private:
  FactorRange factor_;
  SamplingOptions sampling_;
};

// Shifts each image by a fraction of its size drawn uniformly from height_factor (down is
// positive) and width_factor (right is positive). Factors lie in [-1, 1].
class RandomTranslation : public AugmentationStep {
 public:
  RandomTranslation(FactorRange height_factor, FactorRange width_factor,
                    SamplingOptions sampling = {});
  // n shifts in pixels, {dy, dx} per image, drawn in order (dy first).
  std::vector<std::pair<double, double>> draw_shifts(int64_t n, int64_t height,
                                                     int64_t width, Generator& rng) const;
  std::string describe() const override;
  void transform(const float* src, float* dst, const ImageBatchDims& dims,
                 Generator& rng) const override;

 private:
  FactorRange height_factor_, width_factor_;
  SamplingOptions sampling_;
};

// Adds one delta per image, drawn uniformly from factor * (hi - lo), then clips to
// value_range = (lo, hi). Factor lies in [-1, 1]. The value range has no default on purpose:
// Keras' (0, 255) default silently breaks data scaled to [-1, 1].
class RandomBrightness : public AugmentationStep {
 public:
  RandomBrightness(FactorRange factor, std::pair<float, float> value_range);
  // n deltas in value units, drawn in order.
  std::vector<float> draw_deltas(int64_t n, Generator& rng) const;
  std::string describe() const override;
  void transform(const float* src, float* dst, const ImageBatchDims& dims,
                 Generator& rng) const override;

 private:
  FactorRange factor_;
  std::pair<float, float> value_range_;
};

enum class FlipMode { horizontal, vertical, horizontal_and_vertical };
const char* flip_mode_name(FlipMode mode);
FlipMode parse_flip_mode(const std::string& name);

// Mirrors each image left-right and/or top-bottom, each axis of the mode with probability 1/2,
// drawn independently per axis (horizontal first).
class RandomFlip : public AugmentationStep {
 public:
  explicit RandomFlip(FlipMode mode = FlipMode::horizontal_and_vertical);
  struct Flips {
    bool horizontal = false, vertical = false;
  };
  std::vector<Flips> draw_flips(int64_t n, Generator& rng) const;
  std::string describe() const override;
  void transform(const float* src, float* dst, const ImageBatchDims& dims,
                 Generator& rng) const override;

 private:
  FlipMode mode_;
};

// Steps applied in order, e.g. the lab's Task 2 recipe:
//   Augmentation aug{RandomRotation(0.05), RandomTranslation(0.05, 0.05),
//                    RandomBrightness(0.1, {-1, 1})};
class Augmentation {
 public:
  Augmentation() = default;
  template <std::derived_from<AugmentationStep>... Steps>
  explicit Augmentation(Steps... steps) {
    (add(std::move(steps)), ...);
  }
  template <std::derived_from<AugmentationStep> Step>
  Augmentation& add(Step step) {
    steps_.push_back(std::make_shared<const Step>(std::move(step)));
    return *this;
  }

  // x: [N,H,W,C] -> [N,H,W,C]. Inference (or no steps): returns x itself. Training: if `out`
  // is given (same shape as x, not sharing x's storage) the result is written there and out
  // is returned, so a training loop can keep one buffer.
  Tensor operator()(const Tensor& x, Generator& rng, bool training, Tensor out = Tensor()) const;
  // Training-mode pass with a fresh Generator(seed).
  Tensor apply(const Tensor& x, uint64_t seed) const;

  size_t size() const { return steps_.size(); }
  bool empty() const { return steps_.empty(); }
  const AugmentationStep& step(size_t i) const { return *steps_.at(i); }
  // One step per line.
  std::string describe() const;

 private:
  std::vector<std::shared_ptr<const AugmentationStep>> steps_;
};

// images: [N,H,W,C] with C 1 or 3 -> a PNG grid of N rows and 1 + copies columns: the
// originals, then `copies` augmented versions (training mode, one Generator(seed) drawn through
// copy after copy). value_range maps to black..white; scale enlarges each pixel to scale x scale.
void write_augmentation_grid(const Tensor& images, const Augmentation& aug, int copies,
                             uint64_t seed, std::pair<float, float> value_range,
                             const std::string& png_path, int scale = 1);

}  // namespace kiln
