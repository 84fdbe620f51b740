// The convolutional-network ops: conv2d, max_pool2d, batch_norm, dropout, l2_penalty, and
// the shape ops reshape/flatten. The heavy loops live in core/kernels/; each op here checks
// shapes, runs the forward kernel and records the backward kernels right below it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "core/kernels/batch_norm.h"
#include "core/kernels/conv2d/conv2d.h"
#include "core/kernels/max_pool2d.h"
#include "core/kernels/relu_mask.h"
#include "core/runtime/chunked.h"
#include "core/runtime/memory.h"
#include "core/runtime/parallel.h"
#include "core/ops/ops.h"
#include "core/runtime/random.h"

namespace kiln {

Tensor reshape(const Tensor& a, const Shape& shape) { return a.reshape(shape); }

Tensor flatten(const Tensor& a) {
  check_arg(a.dim() >= 1, "flatten", "needs a batch axis, got " + shape_str(a.shape()));
  return a.reshape({a.size(0), -1});
}

namespace {

// dy = z > 0 ? g : 0 elementwise.
void relu_mask(int64_t n, const float* __restrict g, const float* __restrict z, float* __restrict dy) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dy[i] = relu_masked(g[i], z[i]);
}

// conv2d, and with relu conv2d_relu: the ReLU runs in place on the convolution's output, and
// the backward masks the incoming gradient into a scratch buffer before the convolution's
// own backward, instead of a separate op with its own output and gradient buffers.
Tensor conv2d_op(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, int stride, Padding padding,
                 bool relu) {
  check_arg(x.dim() == 4 && w.dim() == 4, op,
            "input " + shape_str(x.shape()) + " must be [N,H,W,C] and kernel " +
                shape_str(w.shape()) + " [kh,kw,C,F]");
  check_arg(x.size(3) == w.size(2), op,
            "input " + shape_str(x.shape()) + " has " + std::to_string(x.size(3)) +
                " channels, kernel " + shape_str(w.shape()) + " expects " +
                std::to_string(w.size(2)));
  check_arg(stride >= 1, op, "stride " + std::to_string(stride) + " must be >= 1");
  if (b.defined())
    check_arg(b.dim() == 1 && b.size(0) == w.size(3), op,
              "bias " + shape_str(b.shape()) + " does not match kernel " + shape_str(w.shape()));
  const Conv2dShape s = Conv2dShape::make(x.size(0), x.size(1), x.size(2), x.size(3), w.size(0),
                                          w.size(1), w.size(3), stride, padding == Padding::Same);
  Tensor out = Tensor::empty({s.N, s.Ho, s.Wo, s.F});
  conv2d_forward(s, x.data(), w.data(), b.defined() ? b.data() : nullptr, out.data());
  const Tensor z = relu ? out.detach() : Tensor();  // the closure must not hold out itself
  if (relu) {
    float* po = out.data();
    const int64_t n = out.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) po[i] = std::max(po[i], 0.0f);
  }

  record(out, op, {x, w, b}, [x, w, b, s, z](const Tensor& g) {
    std::optional<Workspace> masked;
    if (z.defined()) {
      masked.emplace(g.numel());
      relu_mask(g.numel(), g.data(), z.data(), masked->data());
    }
    const float* dy = masked ? masked->data() : g.data();
    if (x.requires_grad()) {
      bool fresh = false;  // x's gradient not yet filled: written, not added to
      float* dx = x.grad_data_or_fresh(fresh);
      conv2d_backward_input(s, dy, w.data(), dx, fresh);
    }
    const bool need_db = b.defined() && b.requires_grad();
    if (w.requires_grad()) {
      conv2d_backward_weight(s, x.data(), dy, w.grad_data(), need_db ? b.grad_data() : nullptr);
    } else if (need_db) {
      conv2d_add_bias_grad(s.rows(), s.F, dy, b.grad_data());
    }
  });
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Padding padding) {
  return conv2d_op("conv2d", x, w, b, stride, padding, /*relu=*/false);
}

Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Padding padding) {
  return conv2d_op("conv2d_relu", x, w, b, stride, padding, /*relu=*/true);
}

Tensor max_pool2d(const Tensor& x, int kernel, int stride, Padding padding) {
  check_arg(x.dim() == 4, "max_pool2d", "input " + shape_str(x.shape()) + " must be [N,H,W,C]");
  check_arg(kernel >= 1 && stride >= 1, "max_pool2d",
            "kernel " + std::to_string(kernel) + " and stride " + std::to_string(stride) +
                " must be >= 1");
  const Pool2dShape s = Pool2dShape::make(x.size(0), x.size(1), x.size(2), x.size(3), kernel,
                                          stride, padding == Padding::Same);
  Tensor out = Tensor::empty({s.N, s.Ho, s.Wo, s.C});
  // From the block cache, not a std::vector: a fresh index buffer every step faulted its pages
  // in again, and with two threads writing it the faults made the pool ten times slower.
  std::shared_ptr<int32_t> argmax = alloc_ints(out.numel());
  max_pool2d_forward(s, x.data(), out.data(), argmax.get());
  record(out, "max_pool2d", {x}, [x, s, argmax](const Tensor& g) {
    bool fresh = false;
    float* dx = x.grad_data_or_fresh(fresh);
    max_pool2d_backward(s, g.data(), argmax.get(), dx, /*overwrite=*/fresh);
  });
  return out;
}

namespace {

// batch_norm, and with relu batch_norm_relu: the kernels apply the ReLU in their own passes,
// and the backward masks the incoming gradient with the saved output z (z > 0).
Tensor batch_norm_op(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                     Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                     float eps, const BatchStatsReduce& sync, bool relu) {
  check_arg(x.dim() >= 1, op, "input " + shape_str(x.shape()) + " has no channel axis");
  const int64_t C = x.size(-1);
  const int64_t M = C ? x.numel() / C : 0;
  for (const Tensor* p : {&gamma, &beta, static_cast<const Tensor*>(&running_mean),
                          static_cast<const Tensor*>(&running_var)})
    check_arg(p->defined() && p->dim() == 1 && p->size(0) == C, op,
              "input " + shape_str(x.shape()) + " has " + std::to_string(C) +
                  " channels but a parameter or statistic has shape " +
                  (p->defined() ? shape_str(p->shape()) : std::string("undefined")));
  Tensor out = Tensor::empty(x.shape());
  // The ReLU's output, for the backward's mask (detached: the closure must not hold out).
  const Tensor z = relu ? out.detach() : Tensor();

  if (training) {
    // Synchronised, every process's rows count (one row here is enough; fit checks that
    // each process has rows).
    check_arg(M > 1 || (sync && M > 0), op,
              "training needs more than one value per channel, got input " + shape_str(x.shape()));
    auto mean = std::make_shared<std::vector<float>>(C);
    auto inv_std = std::make_shared<std::vector<float>>(C);
    std::vector<float> var(C);
    const BatchStatsReduce* reduce = sync ? &sync : nullptr;
    const int64_t rows = batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, out.data(),
                                                  mean->data(), var.data(), inv_std->data(), reduce, relu);
    float* rm = running_mean.data();
    float* rv = running_var.data();
    for (int64_t c = 0; c < C; ++c) {
      rm[c] = momentum * rm[c] + (1.0f - momentum) * (*mean)[c];
      rv[c] = momentum * rv[c] + (1.0f - momentum) * var[c];
    }
    record(out, op, {x, gamma, beta}, [x, gamma, beta, z, mean, inv_std, M, C, sync, rows](const Tensor& g) {
      bool fresh = false;  // x's gradient not yet filled: written, not added to
      float* dx = x.requires_grad() ? x.grad_data_or_fresh(fresh) : nullptr;
      batch_norm_backward_train(M, C, x.data(), gamma.data(), mean->data(), inv_std->data(), g.data(), dx,
                                gamma.requires_grad() ? gamma.grad_data() : nullptr,
                                beta.requires_grad() ? beta.grad_data() : nullptr,
                                sync ? &sync : nullptr, rows, z.defined() ? z.data() : nullptr, fresh);
    });
    return out;
  }

  batch_norm_forward_eval(M, C, x.data(), gamma.data(), beta.data(), running_mean.data(),
                          running_var.data(), eps, out.data(), relu);
  if (needs_graph({&x, &gamma, &beta})) {
    // With fixed statistics the op is affine per channel: y = gamma * xhat + beta.
    auto mean = std::make_shared<std::vector<float>>(running_mean.data(), running_mean.data() + C);
    auto inv_std = std::make_shared<std::vector<float>>(C);
    for (int64_t c = 0; c < C; ++c) (*inv_std)[c] = 1.0f / std::sqrt(running_var.data()[c] + eps);
    record(out, op, {x, gamma, beta}, [x, gamma, beta, z, mean, inv_std, M, C](const Tensor& g) {
      const float* dy = g.data();
      const float* pz = z.defined() ? z.data() : nullptr;
      const float* px = x.data();
      const float* pg = gamma.data();
      float* dx = x.requires_grad() ? x.grad_data() : nullptr;
      float* dgamma = gamma.requires_grad() ? gamma.grad_data() : nullptr;
      float* dbeta = beta.requires_grad() ? beta.grad_data() : nullptr;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t c = 0; c < C; ++c) {
          const float d = pz ? relu_masked(dy[m * C + c], pz[m * C + c]) : dy[m * C + c];
          if (dx) dx[m * C + c] += d * pg[c] * (*inv_std)[c];
          if (dgamma) dgamma[c] += d * (px[m * C + c] - (*mean)[c]) * (*inv_std)[c];
          if (dbeta) dbeta[c] += d;
        }
    });
  }
  return out;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps,
                  const BatchStatsReduce& sync) {
  return batch_norm_op("batch_norm", x, gamma, beta, running_mean, running_var, training, momentum, eps, sync,
                       /*relu=*/false);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, bool training, float momentum, float eps,
                       const BatchStatsReduce& sync) {
  return batch_norm_op("batch_norm_relu", x, gamma, beta, running_mean, running_var, training, momentum, eps,
                       sync, /*relu=*/true);
}

namespace {

// Dropout's mask on elements [begin, end): out[i] = in[i] * scale where element i is kept (its
// counter draw is >= rate) and 0 where it is dropped; Accumulate adds that into out instead.
// A plain loop over restrict pointers with the draw inlined and the mask as bits
// (relu_mask.h), so it vectorises (a select here became a branch per element with AVX2).
template <bool Accumulate>
void dropout_range(const CounterStream& draws, float rate, float scale, const float* __restrict in,
                   float* __restrict out, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = kept_or_zero(draws.uniform(static_cast<uint64_t>(i)) >= rate, in[i] * scale);
    if constexpr (Accumulate) out[i] += v;
    else out[i] = v;
  }
}

template <bool Accumulate>
void dropout_apply(uint64_t seed, float rate, float scale, const float* in, float* out, int64_t n) {
  const CounterStream draws(seed);
  chunked(n, [&](int64_t begin, int64_t end) {
    dropout_range<Accumulate>(draws, rate, scale, in, out, begin, end);
  });
}

}  // namespace

Tensor dropout(const Tensor& x, float rate, bool training, uint64_t seed) {
  check_arg(rate >= 0.0f && rate < 1.0f, "dropout",
            "rate " + std::to_string(rate) + " must be in [0, 1)");
  if (!training || rate == 0.0f) return x;
  const float keep_scale = 1.0f / (1.0f - rate);
  Tensor out = Tensor::empty(x.shape());
  // The mask is a pure function of (seed, i): backward recomputes it instead of storing it.
  dropout_apply<false>(seed, rate, keep_scale, x.data(), out.data(), x.numel());
  record(out, "dropout", {x}, [x, rate, seed, keep_scale](const Tensor& g) {
    bool fresh = false;  // x's gradient not yet filled: written, not added to
    float* gx = x.grad_data_or_fresh(fresh);
    if (fresh) dropout_apply<false>(seed, rate, keep_scale, g.data(), gx, g.numel());
    else dropout_apply<true>(seed, rate, keep_scale, g.data(), gx, g.numel());
  });
  return out;
}

namespace {

// Sum of squares of p[0..n) in double: eight running sums (a vector of doubles; one chain of
// dependent adds over task2's 1.15 million weights was a serial millisecond of every step),
// added in a fixed order at the end.
double sum_of_squares(const float* __restrict p, int64_t n) {
  constexpr int64_t kSums = 8;
  double sums[kSums] = {};
  const int64_t whole = n / kSums * kSums;
  for (int64_t i = 0; i < whole; i += kSums)
    for (int64_t l = 0; l < kSums; ++l) sums[l] += static_cast<double>(p[i + l]) * p[i + l];
  double s = 0.0;
  for (int64_t i = whole; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  for (int64_t l = 0; l < kSums; ++l) s += sums[l];
  return s;
}

}  // namespace

Tensor l2_penalty(const Tensor& w, float lambda) {
  const float* pw = w.data();
  const int64_t n = w.numel();
  // Fixed pieces of kChunkedParallelMin weights, spread over the threads and added in order
  // afterwards: the value is the same for every thread count.
  const int64_t pieces = (n + kChunkedParallelMin - 1) / kChunkedParallelMin;
  std::vector<double> piece_sums(static_cast<size_t>(pieces));
#pragma omp parallel for schedule(static) if (pieces > 1)
  for (int64_t k = 0; k < pieces; ++k) {
    const int64_t begin = k * kChunkedParallelMin;
    piece_sums[static_cast<size_t>(k)] = sum_of_squares(pw + begin, std::min(n - begin, kChunkedParallelMin));
  }
  double s = 0.0;
  for (const double piece : piece_sums) s += piece;
  Tensor out = Tensor::scalar(static_cast<float>(lambda * s));
  record(out, "l2_penalty", {w}, [w, lambda](const Tensor& g) {
    const float scale = 2.0f * lambda * g.data()[0];
    const float* __restrict pw = w.data();
    bool fresh = false;  // the weight's gradient not allocated yet: written, not zeroed and added to
    float* __restrict gw = w.grad_data_or_fresh(fresh);
    const int64_t n = w.numel();
    if (fresh) {
      KILN_PARALLEL_FOR_SIMD(n > kChunkedParallelMin)
      for (int64_t i = 0; i < n; ++i) gw[i] = scale * pw[i];
    } else {
      KILN_PARALLEL_FOR_SIMD(n > kChunkedParallelMin)
      for (int64_t i = 0; i < n; ++i) gw[i] += scale * pw[i];
    }
  });
  return out;
}

}  // namespace kiln
