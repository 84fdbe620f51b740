#include "optim/inspect/inspect.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "core/autograd.h"
#include "core/io/file_error.h"
#include "core/ops/ops.h"
#include "layers/conv2d.h"
#include "optim/inspect/feature_maps.h"
#include "optim/inspect/grad_cam.h"
#include "optim/inspect/layer_stats.h"
#include "optim/inspect/model_trace.h"
#include "optim/inspect/roc.h"
#include "optim/report/plot.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

std::string percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", p);
  return buf;
}

// Panels side by side with a caption above each, on one canvas.
RgbCanvas side_by_side(const std::vector<std::pair<std::string, RgbCanvas>>& panels, const std::string& title) {
  const int s = 2, line = 7 * s, gap = 16, top = 12 + line + 14;
  int width = gap, height = 0;
  for (const auto& [caption, p] : panels) {
    width += std::max(p.width, text_width(caption, s)) + gap;
    height = std::max(height, p.height);
  }
  width = std::max(width, text_width(title, s) + 2 * gap);
  RgbCanvas c(width, top + line + 8 + height + gap);
  draw_text(c, (width - text_width(title, s)) / 2, 12, title, {0, 0, 0}, s);
  int x = gap;
  for (const auto& [caption, p] : panels) {
    const int w = std::max(p.width, text_width(caption, s));
    draw_text(c, x + (w - text_width(caption, s)) / 2, top, caption, {0, 0, 0}, s);
    for (int yy = 0; yy < p.height; ++yy)
      for (int xx = 0; xx < p.width; ++xx) c.set_pixel(x + (w - p.width) / 2 + xx, top + line + 8 + yy, p.pixel(xx, yy));
    x += w + gap;
  }
  return c;
}

}  // namespace

InspectResult inspect(Module& model, const Dataset& data, const InspectOptions& o) {
  check_arg(data.size() > 0, "inspect", "the dataset is empty");
  std::filesystem::create_directories(o.out_dir);
  InspectResult r;
  auto file = [&](const std::string& name) { return (std::filesystem::path(o.out_dir) / name).string(); };
  auto wrote = [&](const std::string& path) {
    r.files.push_back(path);
    if (!o.quiet) std::cout << "wrote " << path << "\n" << std::flush;
  };
  auto name_of = [&](int64_t k) {
    return static_cast<size_t>(k) < o.class_names.size() ? o.class_names[static_cast<size_t>(k)] : std::to_string(k);
  };
  const std::string who = o.title.empty() ? "" : o.title + ": ";
  const bool was_training = model.is_training();
  model.eval();

  // Predictions, confusion, ROC.
  const Tensor scores = predict(model, data.x, o.batch_size);
  check_arg(scores.dim() == 2 && scores.size(0) == data.size(), "inspect",
            "the model outputs " + shape_str(scores.shape()) + " for " + std::to_string(data.size()) + " images; inspect needs [N,K] class scores");
  const int64_t K = scores.size(1);
  const std::vector<int32_t> pred = predicted_classes(scores);
  r.confusion = confusion_matrix(scores, data.labels, std::max<int64_t>(K == 1 ? 2 : K, data.num_classes));
  r.accuracy = static_cast<double>(r.confusion.correct()) / static_cast<double>(data.size());
  write_confusion_csv(file("confusion.csv"), r.confusion, o.class_names);
  wrote(file("confusion.csv"));
  write_png(file("confusion.png"), render_confusion(r.confusion, o.class_names, who + "confusion matrix, " +
                                                                                   std::to_string(data.size()) + " images"));
  wrote(file("confusion.png"));
  auto confidence = [&](int64_t i, int64_t k) {  // the model's probability for class k of row i
    const float* row = scores.data() + i * K;
    return K == 1 ? (k == 1 ? row[0] : 1.0f - row[0]) : row[k];
  };
  if (K <= 2 && r.confusion.classes == 2) {
    std::vector<float> pos(static_cast<size_t>(data.size()));
    for (int64_t i = 0; i < data.size(); ++i) pos[static_cast<size_t>(i)] = confidence(i, 1);
    const RocCurve roc = roc_curve(pos, data.labels);
    r.auc = roc.auc;
    write_roc_csv(file("roc.csv"), roc);
    wrote(file("roc.csv"));
    write_png(file("roc.png"), render_roc(roc, who + "ROC"));
    wrote(file("roc.png"));
  }

  // Filters of every Conv2D, feature maps and Grad-CAM for the chosen images.
  const Tensor first = data.x.slice(0, 1);
  Trace probe;
  {
    NoGradGuard no_grad;
    probe = trace_layers(model, first);
  }
  for (const TracedLayer& l : probe.layers)
    if (auto* conv = dynamic_cast<Conv2D*>(l.module)) {
      const Shape& k = conv->kernel().shape();
      write_png(file("filters-" + l.name + ".png"),
                render_filters(*conv, who + l.name + " kernels " + std::to_string(k[0]) + "x" + std::to_string(k[1])));
      wrote(file("filters-" + l.name + ".png"));
    }
  std::vector<int64_t> rows = o.images;
  if (rows.empty())
    for (int64_t k = 0; k < r.confusion.classes && rows.size() < 4; ++k)
      for (int64_t i = 0; i < data.size(); ++i)
        if (data.labels[static_cast<size_t>(i)] == k) {
          rows.push_back(i);
          break;
        }
  const Shape& xs = data.x.shape();
  // Images as the model takes them: [N,H,W,C] (kiln's own order), or [N,C,H,W] (an NCHW
  // ONNX or channels-first Keras model with 1 or 3 channels), shown as H,W,C either way.
  // Inputs that are not 1- or 3-channel images get the tables and the filters only.
  const bool four_d = data.x.dim() == 4;
  const bool channels_first = four_d && xs[3] != 1 && xs[3] != 3 && (xs[1] == 1 || xs[1] == 3);
  const int64_t H = four_d ? (channels_first ? xs[2] : xs[1]) : 0, W = four_d ? (channels_first ? xs[3] : xs[2]) : 0;
  const int64_t C = four_d ? (channels_first ? xs[1] : xs[3]) : 0;
  const bool images = four_d && (C == 1 || C == 3);
  auto picture = [&](const Tensor& x1) {  // one example [1,...] -> [H,W,C]
    return (channels_first ? permute(x1, {0, 2, 3, 1}) : x1).reshape({H, W, C});
  };
  const std::string layer = images ? (o.layer.empty() ? last_conv_layer(model, first) : o.layer) : "";
  for (int64_t row : rows) {
    check_arg(row >= 0 && row < data.size(), "inspect", "image row " + std::to_string(row) + " is outside the dataset's " +
                                                             std::to_string(data.size()));
    if (!images) break;
    const Tensor x = data.x.slice(row, row + 1);
    const Tensor img = picture(x);
    const int64_t truth = data.labels[static_cast<size_t>(row)], guess = pred[static_cast<size_t>(row)];
    const std::string tag = "row " + std::to_string(row) + ", true " + name_of(truth);
    {
      NoGradGuard no_grad;
      const Trace t = trace_layers(model, x);
      write_png(file("feature-maps-" + std::to_string(row) + ".png"), render_feature_maps(t, img, o.value_range, who + tag));
    }
    wrote(file("feature-maps-" + std::to_string(row) + ".png"));
    if (layer.empty()) continue;
    const int scale = std::max(1, static_cast<int>(224 / std::max(H, W)));
    std::vector<std::pair<std::string, RgbCanvas>> panels;
    panels.emplace_back("image", overlay_heatmap(img, Tensor::zeros({1, 1}), o.value_range, scale, 0.0f));
    // A map that is zero everywhere (no part of the image raises the score at this layer) says so.
    auto cam_panel = [&](const std::string& what, int64_t k) {
      const GradCam cam = grad_cam(model, x, k, layer);
      const bool empty = std::all_of(cam.map.data(), cam.map.data() + cam.map.numel(), [](float v) { return v <= 0; });
      panels.emplace_back("Grad-CAM, " + what + " " + name_of(k) + (empty ? " (all 0)" : ""),
                          overlay_heatmap(img, cam.map, o.value_range, scale));
    };
    cam_panel("true", truth);
    if (guess != truth) cam_panel("predicted", guess);
    panels.emplace_back("saliency (input gradient)",
                        overlay_heatmap(img, saliency(model, x, truth, channels_first), o.value_range, scale, 0.8f));
    const std::string title = who + tag + ", predicted " + name_of(guess) + " (p " + percent(confidence(row, guess)) +
                              "), Grad-CAM on " + layer;
    write_png(file("gradcam-" + std::to_string(row) + ".png"), side_by_side(panels, title));
    wrote(file("gradcam-" + std::to_string(row) + ".png"));
  }

  // The most confidently wrong images.
  std::vector<int64_t> wrong;
  for (int64_t i = 0; i < data.size(); ++i)
    if (pred[static_cast<size_t>(i)] != data.labels[static_cast<size_t>(i)]) wrong.push_back(i);
  std::stable_sort(wrong.begin(), wrong.end(), [&](int64_t a, int64_t b) {
    return confidence(a, pred[static_cast<size_t>(a)]) > confidence(b, pred[static_cast<size_t>(b)]);
  });
  wrong.resize(std::min<size_t>(wrong.size(), static_cast<size_t>(std::max<int64_t>(o.worst, 0))));
  if (images && !wrong.empty()) {
    Tensor picked = Tensor::empty({static_cast<int64_t>(wrong.size()), H, W, C});
    std::vector<std::string> captions;
    const int64_t per = H * W * C;
    for (size_t k = 0; k < wrong.size(); ++k) {
      const int64_t i = wrong[k];
      const Tensor shown = picture(data.x.slice(i, i + 1));
      std::copy_n(shown.data(), per, picked.data() + static_cast<int64_t>(k) * per);
      const int32_t p = pred[static_cast<size_t>(i)];
      captions.push_back("true " + name_of(data.labels[static_cast<size_t>(i)]) + " pred " + name_of(p) + "\np " +
                         percent(confidence(i, p)) + " #" + std::to_string(i));
    }
    const int scale = std::max(1, static_cast<int>(96 / std::max(H, W)));
    write_png(file("worst.png"), render_captioned_grid(picked, captions, o.value_range, 8, scale,
                                                       who + "most confidently wrong: " + std::to_string(wrong.size()) + " of " +
                                                           std::to_string(data.size() - r.confusion.correct()) + " errors"));
    wrote(file("worst.png"));
  }

  // Layer statistics on the first stats_rows rows.
  Batch b;
  const int64_t n = std::min(o.stats_rows, data.size());
  b.x = data.x.slice(0, n);
  b.y_onehot = data.y_onehot.defined() && data.y_onehot.dim() == 2 && data.y_onehot.size(0) == data.size() ? data.y_onehot.slice(0, n)
                                                                                                           : one_hot({}, 1);
  b.labels.assign(data.labels.begin(), data.labels.begin() + n);
  b.indices.resize(static_cast<size_t>(n));
  std::iota(b.indices.begin(), b.indices.end(), int64_t{0});
  if (K > 1 && b.y_onehot.dim() == 2 && b.y_onehot.size(1) != K) b.y_onehot = one_hot(b.labels, K);
  write_layer_stats_csv(file("layer-stats.csv"), layer_statistics(model, b, o.learning_rate));
  wrote(file("layer-stats.csv"));
  model.train(was_training);
  return r;
}

}  // namespace kiln
