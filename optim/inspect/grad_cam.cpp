#include "optim/inspect/grad_cam.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/ops/ops.h"
#include "layers/conv2d.h"
#include "optim/inspect/model_trace.h"

namespace kiln {
namespace {

// The model in inference mode, its parameters out of the autograd graph (so a backward pass
// here leaves no gradients in them), for the lifetime of the guard.
struct EvalGuard {
  explicit EvalGuard(Module& m) : m_(m), was_(m.is_training()) {
    m.eval();
    for (Tensor& p : params_ = m.parameters()) {
      grads_.push_back(p.requires_grad());
      p.set_requires_grad(false);
    }
  }
  ~EvalGuard() {
    m_.train(was_);
    for (size_t i = 0; i < params_.size(); ++i) params_[i].set_requires_grad(grads_[i]);
  }
  Module& m_;
  bool was_;
  std::vector<Tensor> params_;
  std::vector<bool> grads_;
};

// S from the model's output for one image: the logit of the class, or for a single output the
// output (class 1) or its negative (class 0).
Tensor class_score(const Tensor& out, int64_t k) {
  check_arg(out.dim() == 2 && out.size(0) == 1, "grad_cam", "the model's output " + shape_str(out.shape()) +
                                                                 " is not one row of class scores");
  const int64_t K = out.size(1);
  if (K == 1) {
    check_arg(k == 0 || k == 1, "grad_cam", "class " + std::to_string(k) + " of a model with one output (0 or 1)");
    return k == 1 ? sum(out) : neg(sum(out));
  }
  check_arg(k >= 0 && k < K, "grad_cam", "class " + std::to_string(k) + " of a model with " + std::to_string(K) + " outputs");
  Tensor pick = Tensor::zeros({1, K});
  pick.data()[k] = 1.0f;
  return sum(mul(out, pick));
}

}  // namespace

std::string last_conv_layer(Module& model, const Tensor& example) {
  EvalGuard eval(model);
  NoGradGuard no_grad;
  std::string last;
  for (const TracedLayer& l : trace_layers(model, example).layers)
    if (dynamic_cast<Conv2D*>(l.module)) last = l.name;
  return last;
}

GradCam grad_cam(Module& model, const Tensor& image, int64_t class_index, const std::string& layer) {
  check_arg(image.dim() >= 2 && image.size(0) == 1, "grad_cam", "image " + shape_str(image.shape()) + " is not a batch of 1");
  check_arg(grad_enabled(), "grad_cam", "called inside a NoGradGuard; Grad-CAM needs gradients");
  GradCam g;
  g.layer = layer.empty() ? last_conv_layer(model, image) : layer;
  check_arg(!g.layer.empty(), "grad_cam", "the model has no Conv2D layer; name a layer whose output is an image");
  g.class_index = class_index;
  EvalGuard eval(model);
  {  // A as the model computes it.
    NoGradGuard no_grad;
    for (const TracedLayer& l : trace_layers(model, image).layers)
      if (l.name == g.layer) g.activation = l.output.detach();
  }
  check_arg(g.activation.defined(), "grad_cam", "the model has no layer named '" + g.layer + "'");
  check_arg(g.activation.dim() == 4, "grad_cam", "layer '" + g.layer + "' outputs " + shape_str(g.activation.shape()) +
                                                     ", not an image [1,H,W,C]");
  // dS/dA: the rest of the model run from A as a leaf.
  Tensor a = g.activation.detach();
  a.set_requires_grad(true);
  const Tensor s = class_score(trace_layers(model, image, {.replace_layer = g.layer, .replacement = a, .logits = true}).output,
                               class_index);
  g.score = s.data()[0];
  s.backward();
  g.gradient = a.grad().defined() ? a.grad().detach() : Tensor::zeros(a.shape());
  const int64_t H = a.size(1), W = a.size(2), C = a.size(3);
  g.weights.assign(static_cast<size_t>(C), 0.0);
  const float* gd = g.gradient.data();
  for (int64_t p = 0; p < H * W; ++p)
    for (int64_t c = 0; c < C; ++c) g.weights[static_cast<size_t>(c)] += gd[p * C + c];
  for (double& w : g.weights) w /= static_cast<double>(H * W);
  g.map = Tensor::zeros({H, W});
  const float* ad = g.activation.data();
  for (int64_t p = 0; p < H * W; ++p) {
    double v = 0;
    for (int64_t c = 0; c < C; ++c) v += g.weights[static_cast<size_t>(c)] * ad[p * C + c];
    g.map.data()[p] = static_cast<float>(std::max(v, 0.0));
  }
  return g;
}

Tensor input_gradient(Module& model, const Tensor& image, int64_t class_index) {
  check_arg(image.dim() >= 2 && image.size(0) == 1, "saliency", "image " + shape_str(image.shape()) + " is not a batch of 1");
  check_arg(grad_enabled(), "saliency", "called inside a NoGradGuard; saliency needs gradients");
  EvalGuard eval(model);
  Tensor x = image.detach().clone();
  x.set_requires_grad(true);
  const Tensor s = class_score(model.forward_logits(x), class_index);
  s.backward();
  return x.grad().defined() ? x.grad().detach() : Tensor::zeros(x.shape());
}

Tensor saliency(Module& model, const Tensor& image, int64_t class_index, bool channels_first) {
  check_arg(image.dim() == 4, "saliency", "image " + shape_str(image.shape()) + " is not [1,H,W,C] or [1,C,H,W]");
  Tensor g = input_gradient(model, image, class_index);
  if (channels_first) g = permute(g, {0, 2, 3, 1});
  const int64_t H = g.size(1), W = g.size(2), C = g.size(3);
  Tensor m = Tensor::zeros({H, W});
  for (int64_t p = 0; p < H * W; ++p)
    for (int64_t c = 0; c < C; ++c) m.data()[p] = std::max(m.data()[p], std::abs(g.data()[p * C + c]));
  return m;
}

Rgb jet(float v) {
  v = std::clamp(v, 0.0f, 1.0f);
  auto ch = [&](float center) { return static_cast<uint8_t>(255.0f * std::clamp(1.5f - std::abs(4.0f * v - center), 0.0f, 1.0f)); };
  return {ch(3.0f), ch(2.0f), ch(1.0f)};
}

RgbCanvas overlay_heatmap(const Tensor& image, const Tensor& map, std::pair<float, float> range, int scale, float alpha) {
  check_arg(image.dim() == 3 && (image.size(2) == 1 || image.size(2) == 3), "overlay_heatmap",
            "image " + shape_str(image.shape()) + " is not [H,W,1] or [H,W,3]");
  check_arg(map.dim() == 2, "overlay_heatmap", "map " + shape_str(map.shape()) + " is not [h,w]");
  const int64_t H = image.size(0), W = image.size(1), C = image.size(2), h = map.size(0), w = map.size(1);
  float peak = 0;
  for (int64_t i = 0; i < map.numel(); ++i) peak = std::max(peak, map.data()[i]);
  RgbCanvas c(static_cast<int>(W * scale), static_cast<int>(H * scale));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      // The map sampled at this pixel's centre (bilinear, edges clamped).
      const float fy = std::clamp((static_cast<float>(y) + 0.5f) * static_cast<float>(h) / static_cast<float>(H) - 0.5f, 0.0f,
                                  static_cast<float>(h - 1));
      const float fx = std::clamp((static_cast<float>(x) + 0.5f) * static_cast<float>(w) / static_cast<float>(W) - 0.5f, 0.0f,
                                  static_cast<float>(w - 1));
      const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
      const int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
      const float ty = fy - static_cast<float>(y0), tx = fx - static_cast<float>(x0);
      const float* m = map.data();
      const float v = (1 - ty) * ((1 - tx) * m[y0 * w + x0] + tx * m[y0 * w + x1]) + ty * ((1 - tx) * m[y1 * w + x0] + tx * m[y1 * w + x1]);
      const float level = peak > 0 ? v / peak : 0.0f;
      const Rgb hot = jet(level);
      float rgb[3];
      for (int k = 0; k < 3; ++k) {
        const float p = image.data()[(y * W + x) * C + (C == 3 ? k : 0)];
        rgb[k] = std::clamp((p - range.first) / (range.second - range.first), 0.0f, 1.0f) * 255.0f;
      }
      const float grey = C == 3 ? 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2] : rgb[0];
      const float a = alpha * (0.25f + 0.75f * level);  // the colder parts show more of the image
      const Rgb out{static_cast<uint8_t>((1 - a) * (C == 3 ? rgb[0] : grey) + a * hot.r),
                    static_cast<uint8_t>((1 - a) * (C == 3 ? rgb[1] : grey) + a * hot.g),
                    static_cast<uint8_t>((1 - a) * (C == 3 ? rgb[2] : grey) + a * hot.b)};
      c.fill_rect(static_cast<int>(x * scale), static_cast<int>(y * scale), scale, scale, out);
    }
  return c;
}

}  // namespace kiln
