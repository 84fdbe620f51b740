// kiln::Tensor — a float32, contiguous, row-major array of any rank with reverse-mode autograd.
//
// A Tensor is a cheap handle (a shared_ptr) to a TensorImpl. Copying a Tensor copies the
// handle, not the numbers; `clone()` copies the numbers. Storage is 64-byte aligned and may
// be shared between tensors (reshape and slice are views that never copy).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

using Shape = std::vector<int64_t>;

// "[16,28,28,3]"
std::string shape_str(const Shape& shape);
// Product of the extents (1 for a scalar shape []).
int64_t shape_numel(const Shape& shape);

class Tensor;
using BackwardFn = std::function<void(const Tensor& grad_out)>;

// What a node of the autograd graph holds: its value, its gradient, and, for a result of an
// op, the inputs it came from plus the closure that sends grad_out back to them.
struct TensorImpl {
  Shape shape;
  int64_t numel = 0;
  std::shared_ptr<float> storage;  // shared by views
  int64_t offset = 0;              // in floats, into storage

  bool requires_grad = false;
  std::shared_ptr<float> grad;  // same numel as the value, allocated on first accumulation
  std::vector<Tensor> inputs;   // graph edges, empty for a leaf
  BackwardFn backward;          // null for a leaf
  const char* op = nullptr;     // name of the op that made it, for errors and debugging
  bool graph_freed = false;     // set once backward() has consumed this node's closure
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() == false

  // --- creation ---------------------------------------------------------------------------
  static Tensor empty(const Shape& shape);  // uninitialised numbers
  static Tensor zeros(const Shape& shape);
  static Tensor ones(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor scalar(float value);  // shape []
  // values.size() must equal shape_numel(shape).
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  // Seeded random fills: element i depends only on (seed, i), so the numbers are the same
  // for every run and every thread count.
  static Tensor uniform(const Shape& shape, float lo, float hi, uint64_t seed);
  static Tensor normal(const Shape& shape, float mean, float stddev, uint64_t seed);

  // --- inspection -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t axis) const;  // negative axis counts from the end
  int64_t numel() const;
  float* data();
  const float* data() const;
  float item() const;                  // the value of a one-element tensor
  float at(std::initializer_list<int64_t> index) const;  // bounds-checked element read
  std::vector<float> to_vector() const;
  std::string str() const;             // "Tensor[2,3] {...}" (first few values)

  // --- views and copies -------------------------------------------------------------------
  // Same numbers, new shape (one extent may be -1). A view: no copy. Differentiable.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) along axis 0, as a view sharing storage. Differentiable.
  Tensor slice(int64_t begin, int64_t end) const;
  // A new tensor with a copy of the numbers. Differentiable.
  Tensor clone() const;
  // Same storage, cut from the graph (requires_grad false).
  Tensor detach() const;
  Tensor& fill_(float value);          // in place, not recorded
  Tensor& copy_(const Tensor& other);  // in place, shapes must match, not recorded

  // --- autograd ---------------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);  // only on leaves
  bool is_leaf() const;
  // The accumulated gradient as a tensor sharing the grad buffer, or undefined if none.
  Tensor grad() const;
  // Pointer to the gradient buffer, zero-filled on first use. Backward closures add into it.
  float* grad_data() const;
  // The same buffer for a backward kernel that can write as well as add: when the buffer does
  // not exist yet it is allocated without the zero fill and `fresh` is set, and the caller must
  // then write every element (=) instead of adding (+=). Saves a pass over memory.
  float* grad_data_or_fresh(bool& fresh) const;
  void zero_grad();  // drops the gradient buffer
  // Reverse-mode pass from this scalar: topological order found iteratively, each node's
  // closure called once in reverse order, gradients added (+=) into leaves, graph freed.
  void backward() const;
  const char* op() const;

  TensorImpl* impl() const { return impl_.get(); }
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Throws std::invalid_argument with "<op>: <what>" when cond is false.
void check_arg(bool cond, const char* op, const std::string& what);

}  // namespace kiln
