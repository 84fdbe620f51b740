// Where a CNN looks: Grad-CAM (Selvaraju et al., 2017) and plain input-gradient saliency
// (Simonyan et al., 2014) for one image and one class.
//
// Grad-CAM: for a conv layer's output A [1,H,W,C] and the class score S (the logit before a
// final softmax; for a model with one sigmoid output, the output itself for class 1 and its
// negative for class 0), the weight of channel c is the mean of dS/dA over the image, and the
// map is ReLU(sum_c weight_c * A[:,:,c]): the parts of the image that raise the class score.
// Saliency: max over channels of |dS/dx|, per pixel of the input.
#pragma once

#include <string>
#include <vector>

#include "core/io/png_image.h"
#include "layers/module.h"

namespace kiln {

struct GradCam {
  std::string layer;       // the layer whose output A is
  int64_t class_index = 0;
  double score = 0;        // S for the image
  Tensor activation;       // A: [1,H,W,C]
  Tensor gradient;         // dS/dA: [1,H,W,C]
  std::vector<double> weights;  // per channel: the mean of dS/dA over H,W
  Tensor map;              // [H,W], ReLU(sum_c weights_c * A), not normalised
};

// The dotted name (as trace_layers gives it) of the last Conv2D the model runs on `example`
// (a batch of 1); empty when it has none.
std::string last_conv_layer(Module& model, const Tensor& example);

// image: one example as a batch of 1 ([1,H,W,C] for kiln's models). layer: empty for the last
// Conv2D. The model runs in inference mode (restored after). Throws std::invalid_argument for
// a class outside the model's outputs, a layer that is not there or whose output is not an
// image ([1,H,W,C]).
GradCam grad_cam(Module& model, const Tensor& image, int64_t class_index, const std::string& layer = "");

// dS/dx for the same score S: [1, ...] as image.
Tensor input_gradient(Module& model, const Tensor& image, int64_t class_index);
// [H,W]: the max over channels of |dS/dx| (image [1,H,W,C], or [1,C,H,W] with channels_first).
Tensor saliency(Module& model, const Tensor& image, int64_t class_index, bool channels_first = false);

// A [h,w] map over an [H,W,C] image (C 1 or 3, values in value_range): the map bilinearly
// resized to H x W, scaled to [0,1] by its maximum, coloured from dark blue through green to
// red ("jet"), and blended over a grey copy of the image (alpha: the colour's share where
// the map is 1). Every image pixel becomes `scale` x `scale` canvas pixels.
RgbCanvas overlay_heatmap(const Tensor& image, const Tensor& map, std::pair<float, float> value_range,
                          int scale, float alpha = 0.55f);
// The jet colour of v in [0, 1].
Rgb jet(float v);

}  // namespace kiln
