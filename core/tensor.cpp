#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/autograd.h"
#include "core/runtime/memory.h"
#include "core/runtime/random.h"

namespace kiln {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    // A product past int64 (a damaged file's extents) would wrap to a small or negative count.
    if (d > 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw std::invalid_argument("shape " + shape_str(shape) + " holds more than 2^63 elements");
    n *= d;
  }
  return n;
}

void check_arg(bool cond, const char* op, const std::string& what) {
  if (!cond) throw std::invalid_argument(std::string(op) + ": " + what);
}

namespace {

std::shared_ptr<TensorImpl> make_impl(const Shape& shape) {
  for (int64_t d : shape)
    check_arg(d >= 0, "Tensor", "negative extent in shape " + shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->numel = shape_numel(shape);
  impl->storage = alloc_floats(impl->numel);
  return impl;
}

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl, const char* what) {
  if (!impl) throw std::logic_error(std::string(what) + ": tensor is undefined");
  return *impl;
}

}  // namespace

// --- creation ------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape) { return Tensor(make_impl(shape)); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape) { return full(shape, 0.0f); }
Tensor Tensor::ones(const Shape& shape) { return full(shape, 1.0f); }
Tensor Tensor::scalar(float value) { return full({}, value); }

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  check_arg(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector",
            std::to_string(values.size()) + " values do not fill shape " + shape_str(shape));
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor Tensor::uniform(const Shape& shape, float lo, float hi, uint64_t seed) {
  Tensor t = empty(shape);
  float* p = t.data();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = lo + (hi - lo) * uniform_at(seed, static_cast<uint64_t>(i));
  return t;
}

Tensor Tensor::normal(const Shape& shape, float mean, float stddev, uint64_t seed) {
  Tensor t = empty(shape);
  float* p = t.data();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = mean + stddev * normal_at(seed, static_cast<uint64_t>(i));
  return t;
}

// --- inspection ----------------------------------------------------------------------------

const Shape& Tensor::shape() const { return checked(impl_, "shape").shape; }
int64_t Tensor::numel() const { return checked(impl_, "numel").numel; }

int64_t Tensor::size(int64_t axis) const {
  const int64_t r = dim();
  const int64_t a = axis < 0 ? axis + r : axis;
  check_arg(a >= 0 && a < r, "size",
            "axis " + std::to_string(axis) + " out of range for shape " + shape_str(shape()));
  return shape()[a];
}

float* Tensor::data() {
  const TensorImpl& t = checked(impl_, "data");
  return t.storage.get() + t.offset;
}
const float* Tensor::data() const {
  const TensorImpl& t = checked(impl_, "data");
  return t.storage.get() + t.offset;
}

float Tensor::item() const {
  check_arg(numel() == 1, "item", "tensor of shape " + shape_str(shape()) + " is not one element");
  return data()[0];
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  const Shape& s = shape();
  check_arg(index.size() == s.size(), "at",
            std::to_string(index.size()) + " indices for shape " + shape_str(s));
  int64_t flat = 0, axis = 0;
  for (int64_t i : index) {
    check_arg(i >= 0 && i < s[axis], "at",
              "index " + std::to_string(i) + " out of range on axis " + std::to_string(axis) +
                  " of shape " + shape_str(s));
    flat = flat * s[axis] + i;
    ++axis;
  }
  return data()[flat];
}

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data(), data() + numel()); }

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor" << shape_str(shape()) << " {";
  const int64_t n = std::min<int64_t>(numel(), 8);
  for (int64_t i = 0; i < n; ++i) os << (i ? ", " : "") << data()[i];
  if (numel() > n) os << ", ...";
  os << "}";
  return os.str();
}

// --- views and copies ----------------------------------------------------------------------

namespace {

// A tensor that shares `src`'s storage with a new shape and offset.
Tensor make_view(const Tensor& src, const Shape& shape, int64_t extra_offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->numel = shape_numel(shape);
  impl->storage = src.impl()->storage;
  impl->offset = src.impl()->offset + extra_offset;
  return Tensor(impl);
}

Shape resolve_shape(const Shape& target, int64_t numel, const Shape& from) {
  Shape s = target;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      check_arg(infer < 0, "reshape", "more than one -1 in " + shape_str(target));
      infer = static_cast<int64_t>(i);
    } else {
      check_arg(s[i] >= 0, "reshape", "negative extent in " + shape_str(target));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    check_arg(known > 0 && numel % known == 0, "reshape",
              "cannot reshape " + shape_str(from) + " to " + shape_str(target));
    s[infer] = numel / known;
  }
  check_arg(shape_numel(s) == numel, "reshape",
            "cannot reshape " + shape_str(from) + " (" + std::to_string(numel) +
                " elements) to " + shape_str(target));
  return s;
}

}  // namespace

Tensor Tensor::reshape(const Shape& new_shape) const {
  const Shape s = resolve_shape(new_shape, numel(), shape());
  Tensor out = make_view(*this, s, 0);
  Tensor x = *this;
  record(out, "reshape", {x}, [x](const Tensor& g) mutable {
    float* gx = x.grad_data();
    const float* go = g.data();
    const int64_t n = g.numel();
    for (int64_t i = 0; i < n; ++i) gx[i] += go[i];
  });
  return out;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  check_arg(dim() >= 1, "slice", "cannot slice a scalar");
  const int64_t rows = shape()[0];
  check_arg(0 <= begin && begin <= end && end <= rows, "slice",
            "rows [" + std::to_string(begin) + "," + std::to_string(end) + ") out of range for " +
                shape_str(shape()));
  Shape s = shape();
  s[0] = end - begin;
  const int64_t row = rows ? numel() / rows : 0;
  Tensor out = make_view(*this, s, begin * row);
  Tensor x = *this;
  record(out, "slice", {x}, [x, begin, row](const Tensor& g) mutable {
    float* gx = x.grad_data() + begin * row;
    const float* go = g.data();
    const int64_t n = g.numel();
    for (int64_t i = 0; i < n; ++i) gx[i] += go[i];
  });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape());
  std::memcpy(out.data(), data(), sizeof(float) * numel());
  Tensor x = *this;
  record(out, "clone", {x}, [x](const Tensor& g) mutable {
    float* gx = x.grad_data();
    const float* go = g.data();
    const int64_t n = g.numel();
    for (int64_t i = 0; i < n; ++i) gx[i] += go[i];
  });
  return out;
}

Tensor Tensor::detach() const { return make_view(*this, shape(), 0); }

Tensor& Tensor::fill_(float value) {
  float* p = data();
  std::fill(p, p + numel(), value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& other) {
  check_arg(shape() == other.shape(), "copy_",
            "destination " + shape_str(shape()) + " and source " + shape_str(other.shape()) +
                " differ");
  std::memmove(data(), other.data(), sizeof(float) * numel());
  return *this;
}

// --- autograd accessors (the graph walk itself is in autograd.cpp) -------------------------

bool Tensor::requires_grad() const { return checked(impl_, "requires_grad").requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  checked(impl_, "set_requires_grad");
  if (impl_->backward)
    throw std::logic_error(std::string("set_requires_grad: the result of op '") +
                           (impl_->op ? impl_->op : "?") + "' is not a leaf");
  impl_->requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const { return !checked(impl_, "is_leaf").backward; }

Tensor Tensor::grad() const {
  checked(impl_, "grad");
  if (!impl_->grad) return Tensor();
  auto g = std::make_shared<TensorImpl>();
  g->shape = impl_->shape;
  g->numel = impl_->numel;
  g->storage = impl_->grad;
  return Tensor(g);
}

float* Tensor::grad_data_or_fresh(bool& fresh) const {
  checked(impl_, "grad_data_or_fresh");
  fresh = !impl_->grad;
  if (fresh) impl_->grad = alloc_floats(impl_->numel);
  return impl_->grad.get();
}

float* Tensor::grad_data() const {
  checked(impl_, "grad_data");
  bool fresh = false;
  float* g = grad_data_or_fresh(fresh);
  if (fresh) std::fill(g, g + impl_->numel, 0.0f);
  return g;
}

void Tensor::zero_grad() {
  checked(impl_, "zero_grad");
  impl_->grad.reset();
}

const char* Tensor::op() const { return checked(impl_, "op").op; }

}  // namespace kiln
