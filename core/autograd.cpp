#include "core/autograd.h"

#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kiln {
namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_graph(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& out, const char* op, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!g_grad_enabled) return;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return;
  TensorImpl* node = out.impl();
  node->requires_grad = true;
  node->op = op;
  // Keep only the edges that lead to something needing a gradient.
  for (Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) node->inputs.push_back(std::move(t));
  node->backward = std::move(backward);
}

void Tensor::backward() const {
  if (!impl_) throw std::logic_error("backward: tensor is undefined");
  if (numel() != 1)
    throw std::invalid_argument("backward: needs a one-element tensor (a loss), got shape " +
                                shape_str(shape()));
  if (impl_->graph_freed)
    throw std::logic_error("backward: the graph behind this tensor was already freed by an "
                           "earlier backward(); run the forward pass again");
  if (!impl_->requires_grad)
    throw std::logic_error("backward: the tensor does not require grad (no parameter or input "
                           "with requires_grad reached it, or it was made in a no-grad scope)");

  // Iterative post-order DFS: each node is emitted after all of its inputs, so walking the
  // list backwards visits a node only after every consumer has added its gradient. `order`
  // holds handles, not raw pointers: freeing a node's edges below may drop the last other
  // reference to an input that is still waiting its turn.
  std::vector<Tensor> order;
  std::unordered_set<TensorImpl*> seen;
  std::vector<std::pair<Tensor, size_t>> stack;
  stack.emplace_back(*this, 0);
  seen.insert(impl_.get());
  while (!stack.empty()) {
    TensorImpl* node = stack.back().first.impl();
    size_t& next = stack.back().second;
    if (next < node->inputs.size()) {
      const Tensor child = node->inputs[next++];
      TensorImpl* c = child.impl();
      if (c->graph_freed)
        throw std::logic_error(std::string("backward: op '") + (c->op ? c->op : "?") +
                               "' on the path was already consumed by an earlier backward()");
      if (c->backward && seen.insert(c).second) stack.emplace_back(child, 0);
    } else {
      order.push_back(std::move(stack.back().first));
      stack.pop_back();
    }
  }

  // Seed d(loss)/d(loss) = 1 on top of whatever is already there.
  grad_data()[0] += 1.0f;

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* node = it->impl();
    if (!node->backward) continue;  // a leaf called backward() on itself
    if (node->grad) {
      auto g = std::make_shared<TensorImpl>();
      g->shape = node->shape;
      g->numel = node->numel;
      g->storage = node->grad;
      node->backward(Tensor(g));
    }
    // Free the graph as we go: this node's closure, edges and intermediate gradient are no
    // longer needed once it has passed its gradient on.
    node->backward = nullptr;
    node->inputs.clear();
    node->grad.reset();
    node->graph_freed = true;
  }
}

}  // namespace kiln
