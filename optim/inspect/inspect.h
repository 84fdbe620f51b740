// kiln::inspect: the pictures a CNN course shows, for any model kiln runs and a labelled
// dataset, written into one directory (what `kiln inspect` and the task apps' --inspect call):
//
//   confusion.png, confusion.csv      counts and row shares (optim/inspect/confusion.h)
//   roc.png, roc.csv                  binary models: the exact curve, AUC on it (roc.h)
//   filters-<layer>.png               every Conv2D's kernels (feature_maps.h)
//   feature-maps-<row>.png            every conv/pool layer's output for the chosen images
//   gradcam-<row>.png                 the image, Grad-CAM for its true and its predicted class,
//                                     and input-gradient saliency (grad_cam.h)
//   worst.png                         the most confidently wrong images
//   layer-stats.csv                   outputs, gradients and update ratios per layer (layer_stats.h)
//
// Each piece is a function of its own in the headers named, for use on any Module.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "layers/module.h"
#include "optim/inspect/confusion.h"

namespace kiln {

struct InspectOptions {
  std::string out_dir = "inspect";
  // Rows of the dataset for the feature maps and Grad-CAM; empty: the first row of each
  // class, at most four.
  std::vector<int64_t> images{};
  int64_t worst = 16;                          // images in worst.png
  std::string layer;                           // Grad-CAM's layer; empty: the last Conv2D
  std::vector<std::string> class_names{};      // default "0", "1", ...
  std::pair<float, float> value_range{-1, 1};  // the inputs' values that show as black and white
  int64_t batch_size = 256;
  int64_t stats_rows = 64;                     // the batch layer-stats.csv is computed on
  double learning_rate = 1e-3;                 // for the update ratios
  std::string title;                           // the model's name, in the pictures' titles
  bool quiet = false;                          // no line per file written
};

struct InspectResult {
  std::vector<std::string> files;  // written, in order
  ConfusionMatrix confusion;
  double accuracy = 0;
  double auc = -1;                 // binary models; -1 otherwise
};

// data.x must be what model->forward takes ([N,H,W,C] images for kiln's models). Throws
// std::invalid_argument for a model whose output is not [N,K] class scores for data, and
// FileError when a file cannot be written.
InspectResult inspect(Module& model, const Dataset& data, const InspectOptions& options = {});

}  // namespace kiln
