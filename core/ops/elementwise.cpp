// Elementwise ops: binary ops with NumPy broadcasting, scalar ops and unary activations.
#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/runtime/chunked.h"
#include "core/runtime/parallel.h"
#include "core/ops/broadcast.h"
#include "core/ops/ops.h"

namespace kiln {
namespace {

enum class BinOp { Add, Sub, Mul, Div };

Tensor binary(const char* name, BinOp op, const Tensor& a, const Tensor& b) {
  const Broadcast br = broadcast(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(br.out);
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  auto apply = [op](float x, float y) {
    switch (op) {
      case BinOp::Add: return x + y;
      case BinOp::Sub: return x - y;
      case BinOp::Mul: return x * y;
      case BinOp::Div: return x / y;
    }
    return 0.0f;
  };
  if (br.same) {
    const int64_t n = out.numel();
    KILN_PARALLEL_FOR_SIMD(n > kChunkedParallelMin)
    for (int64_t i = 0; i < n; ++i) po[i] = apply(pa[i], pb[i]);
  } else {
    for_each_broadcast(br, [&](int64_t i, int64_t ia, int64_t ib) { po[i] = apply(pa[ia], pb[ib]); });
  }

  record(out, name, {a, b}, [a, b, br, op](const Tensor& g) {
    const float* pg = g.data();
    const float* pa = a.data();
    const float* pb = b.data();
    float* ga = a.requires_grad() ? a.grad_data() : nullptr;
    float* gb = b.requires_grad() ? b.grad_data() : nullptr;
    // d/da and d/db of the op, given the upstream gradient and both operands.
    auto da = [op](float gv, float, float y) {
      return op == BinOp::Mul ? gv * y : op == BinOp::Div ? gv / y : gv;
    };
    auto db = [op](float gv, float x, float y) {
      switch (op) {
        case BinOp::Add: return gv;
        case BinOp::Sub: return -gv;
        case BinOp::Mul: return gv * x;
        case BinOp::Div: return -gv * x / (y * y);
      }
      return 0.0f;
    };
    if (br.same) {
      const int64_t n = g.numel();
#pragma omp parallel for schedule(static) if (n > kChunkedParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        if (ga) ga[i] += da(pg[i], pa[i], pb[i]);
        if (gb) gb[i] += db(pg[i], pa[i], pb[i]);
      }
    } else {
      // Broadcast operands receive the sum over the axes they were repeated along.
      for_each_broadcast(br, [&](int64_t i, int64_t ia, int64_t ib) {
        if (ga) ga[ia] += da(pg[i], pa[ia], pb[ib]);
        if (gb) gb[ib] += db(pg[i], pa[ia], pb[ib]);
      });
    }
  });
  return out;
}

// y = f(x) elementwise; dx += grad(g, x, y).
template <class Fwd, class Grad>
Tensor unary_grad(const char* name, const Tensor& a, Fwd fwd, Grad grad) {
  Tensor out = Tensor::empty(a.shape());
  const float* __restrict pa = a.data();
  float* __restrict po = out.data();
  chunked(a.numel(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) po[i] = fwd(pa[i]);
  });
  if (needs_graph({&a})) {
    Tensor y = out.detach();
    record(out, name, {a}, [a, y, grad](const Tensor& g) {
      const float* __restrict pg = g.data();
      const float* __restrict px = a.data();
      const float* __restrict py = y.data();
      float* __restrict gx = a.grad_data();
      chunked(g.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) gx[i] += grad(pg[i], px[i], py[i]);
      });
    });
  }
  return out;
}

// y = f(x) elementwise; dx += g * dfdx(x, y).
template <class Fwd, class Bwd>
Tensor unary(const char* name, const Tensor& a, Fwd fwd, Bwd dfdx) {
  return unary_grad(name, a, fwd, [dfdx](float g, float x, float y) { return g * dfdx(x, y); });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", BinOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", BinOp::Div, a, b); }

Tensor add(const Tensor& a, float s) {
  return unary("add_scalar", a, [s](float x) { return x + s; }, [](float, float) { return 1.0f; });
}
Tensor mul(const Tensor& a, float s) {
  return unary("mul_scalar", a, [s](float x) { return x * s; }, [s](float, float) { return s; });
}
Tensor neg(const Tensor& a) { return mul(a, -1.0f); }
Tensor square(const Tensor& a) {
  return unary("square", a, [](float x) { return x * x; }, [](float x, float) { return 2.0f * x; });
}
Tensor relu(const Tensor& a) {
  // Both written as selects, which GCC vectorises (g * (y > 0 ? 1 : 0) it compiles to a
  // branch per element, and the signs of pre-activations are random: half mispredict).
  return unary_grad("relu", a, [](float x) { return std::max(x, 0.0f); },
                    [](float g, float, float y) { return y > 0.0f ? g : 0.0f; });
}
Tensor sigmoid(const Tensor& a) {
  return unary("sigmoid", a, [](float x) { return 1.0f / (1.0f + std::exp(-x)); },
               [](float, float y) { return y * (1.0f - y); });
}
Tensor tanh(const Tensor& a) {
  return unary("tanh", a, [](float x) { return std::tanh(x); },
               [](float, float y) { return 1.0f - y * y; });
}
Tensor exp(const Tensor& a) {
  return unary("exp", a, [](float x) { return std::exp(x); }, [](float, float y) { return y; });
}
Tensor log(const Tensor& a) {
  return unary("log", a, [](float x) { return std::log(x); }, [](float x, float) { return 1.0f / x; });
}

}  // namespace kiln
