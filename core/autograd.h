// Autograd plumbing shared by every op: grad mode, and how an op attaches its backward.
//
// An op computes its result, then calls record() with its inputs and a closure that takes
// the gradient of the result and adds (+=) the gradients of the inputs into
// input.grad_data(). record() does nothing in a no-grad scope or when no input needs a
// gradient, so inference builds no graph.
#pragma once

#include "core/tensor.h"

namespace kiln {

// True unless a NoGradGuard is alive on this thread.
bool grad_enabled();

// Turns graph recording off for its lifetime (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op with these inputs must record a backward closure.
bool needs_graph(std::initializer_list<const Tensor*> inputs);

// Makes `out` a graph node produced by `op` from `inputs` with the given backward closure,
// if needs_graph(inputs). The closure must not hold `out` itself (that would be a cycle);
// it may hold inputs and any saved buffers.
void record(Tensor& out, const char* op, std::vector<Tensor> inputs, BackwardFn backward);

}  // namespace kiln
