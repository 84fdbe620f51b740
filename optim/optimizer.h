// Optimizer: the base of SGD, Adam and AdamW. It holds the parameters by name, the step
// counter and the learning rate, and names every piece of its state so that a checkpoint
// can save and restore it. Update rules follow Keras 3 (see each subclass).
//
// Contract shared by every optimizer:
//   - step() reads each parameter's accumulated grad() and never writes to it (flashlight's
//     SGD overwrote .grad through a reference; here the gradient stays what backward() made);
//   - a parameter without a gradient (never reached by backward) is skipped: neither the
//     parameter nor its state moves, as in Keras, which filters out missing gradients;
//   - updates run in a no-grad scope, so they never enter an autograd graph.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace kiln {

// Same alias as layers/module.h (a redeclaration to the same type is allowed), so optim/
// does not depend on layers/.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  // Parameters with their dotted names, as Module::named_parameters() returns them. Throws
  // std::invalid_argument for an undefined tensor, an empty or repeated name, or one tensor
  // listed twice (it would be updated twice per step).
  explicit Optimizer(NamedTensors params);
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update from each parameter's accumulated grad(); counts one iteration.
  virtual void step() = 0;
  // Drops every parameter's gradient buffer (Tensor::zero_grad).
  void zero_grad();

  int64_t iterations() const { return iterations_; }  // completed steps
  float learning_rate() const { return learning_rate_; }
  void set_learning_rate(float lr);  // for schedules; takes effect at the next step()

  // Named snapshot (copies, not views) of everything a resumed run needs: "iterations" [],
  // "learning_rate" [], then the subclass's per-parameter slots ("<param>.m", ...), all
  // float32 ("iterations" is exact up to 2^24 = 16.7 million steps).
  virtual NamedTensors state() const;
  // Restores a state() snapshot. Every entry is checked before anything is written; throws
  // std::invalid_argument naming the entry when one is missing, has the wrong shape, is
  // not expected by this optimizer, or "iterations" is not a whole number >= 0.
  virtual void load_state(const NamedTensors& state);

  const NamedTensors& params() const { return params_; }

 protected:
  // For subclasses: a per-parameter slot (zeros shaped like each parameter) saved in state()
  // as "<param>.<suffix>". Returns the tensors in params() order.
  std::vector<Tensor> add_slot(const std::string& suffix);
  // Name of the concrete optimizer for error messages ("SGD", "Adam", "AdamW").
  virtual const char* name() const = 0;

  NamedTensors params_;
  int64_t iterations_ = 0;
  float learning_rate_ = 0.0f;

 private:
  NamedTensors slots_;  // "<param>.<suffix>" -> slot tensor, in creation order
};

}  // namespace kiln
