// PyTorch state_dicts -> kiln: the zip files torch.save writes (PyTorch >= 1.6, the default
// layout), read by a small unpickler that accepts only what a state_dict holds (tensors, the
// OrderedDict they live in, its _metadata), and loaded into a kiln model of the same
// architecture with PyTorch's layouts turned into kiln's.
//
//   torch                                     kiln
//   Conv2d.weight      [O,I,kh,kw]            Conv2D kernel [kh,kw,I,O]
//   Linear.weight      [out,in]               Dense kernel  [in,out] (rows in H,W,C order after a
//                                             Flatten of a CHW map: see flatten_chw)
//   *.bias                                    bias (Conv2D, Dense) / beta (BatchNorm2d)
//   BatchNorm2d.weight, running_mean, running_var   gamma, moving_mean, moving_variance
//   BatchNorm2d.num_batches_tracked           skipped (kiln keeps no such counter)
//
// Not carried by a state_dict, so the kiln model must be built with them: BatchNorm's epsilon
// (PyTorch's default is 1e-5, kiln's 1e-3) and momentum (PyTorch 0.1 is kiln 0.9), paddings,
// strides and activations.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"

namespace kiln {

// A state_dict's floating-point tensors in file order, converted to float32 (from float64,
// float16 or bfloat16 where the file holds those), in PyTorch's own layouts.
struct TorchTensors {
  NamedTensors tensors;
  std::vector<std::string> skipped;  // integer counters left out: "...num_batches_tracked"
};

// Reads a file written by torch.save(model.state_dict(), path). Throws FileError naming path
// and what is wrong: not a zip (a legacy torch.save file, with what to do about it), a
// TorchScript archive, a pickle that does anything but build tensors (any other import, an
// unknown opcode, ...), a missing or short storage, a non-contiguous tensor, an integer tensor
// other than num_batches_tracked.
TorchTensors read_torch_state_dict(const std::string& path);

struct TorchLoadOptions {
  // Torch module prefix -> kiln layer prefix, e.g. {"features.0", "conv2d"}; an entry also
  // covers the modules below it ({"features", "block"}: "features.3" -> "block.3"), the longest
  // matching entry wins, and every torch module must be covered by one. Empty: by order, the
  // i-th torch module with tensors loads into the i-th kiln layer with weights, and their kinds
  // (conv, linear, batch norm) must agree.
  std::vector<std::pair<std::string, std::string>> name_map{};
  // Torch Linear prefix -> (C,H,W) of the feature map nn.Flatten made its input from: its
  // weight's columns are reordered from PyTorch's C,H,W flatten order to kiln's H,W,C.
  std::vector<std::pair<std::string, std::array<int64_t, 3>>> flatten_chw{};
};

// Reads path and copies every tensor into model. Every kiln parameter and buffer must be
// filled exactly once and every torch tensor (but num_batches_tracked) used, or a FileError
// names the file, the tensors left over or missing, and the shapes that disagree; the model
// is changed only when everything fits. A flatten_chw entry naming no Linear, or whose C*H*W
// is not the Linear's input width, throws std::invalid_argument.
void load_torch_state_dict(const std::string& path, Module& model, const TorchLoadOptions& options = {});

}  // namespace kiln
