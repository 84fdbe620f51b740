// What the convolution layers learned and what they see: their kernels as images, and each
// conv/pool layer's output channels for one input image. Plus a captioned image grid, for
// the most confidently wrong images.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/io/png_image.h"
#include "layers/conv2d.h"
#include "optim/inspect/model_trace.h"

namespace kiln {

// A Conv2D's kernels [kh,kw,C,F] as tiles. With 3 input channels, one RGB tile per filter
// (each scaled so its largest weight is full colour, 128 grey at zero); otherwise one tile per
// (filter, input channel), a row per filter (at most max_rows) and a column per input channel
// (at most max_cols), coloured blue (negative) through white to red (positive).
RgbCanvas render_filters(const Conv2D& conv, const std::string& title, int max_rows = 32, int max_cols = 32);

// The input image and, for every traced layer that is a Conv2D or a pooling layer with an
// image output [1,H,W,C], its first max_channels channels, one row per layer labelled with its
// name and shape; each channel is scaled to its own range (black low, white high).
// image: [H,W,C] in value_range.
RgbCanvas render_feature_maps(const Trace& trace, const Tensor& image, std::pair<float, float> value_range,
                              const std::string& title, int max_channels = 16);

// images: [N,H,W,C] (C 1 or 3) in value_range; captions: up to 2 lines per image ("\n"),
// drawn under it. cols images per row, each pixel scale x scale.
RgbCanvas render_captioned_grid(const Tensor& images, const std::vector<std::string>& captions,
                                std::pair<float, float> value_range, int cols, int scale, const std::string& title);

}  // namespace kiln
