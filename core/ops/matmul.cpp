// Matrix products on cblas_sgemm (OpenBLAS): matmul with transposes, and dense (x W + b).
#include <cblas.h>

#include "core/autograd.h"
#include "core/ops/ops.h"

namespace kiln {
namespace {

// Row-major C[M,N] = op(A) op(B) + beta C, where op(A) is [M,K] and op(B) is [K,N].
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
          float beta, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = beta C, written here rather than left to the BLAS
    for (int64_t i = 0; i < M * N; ++i) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, A,
              static_cast<int>(ta ? M : K), B, static_cast<int>(tb ? K : N), beta, C,
              static_cast<int>(N));
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  check_arg(a.dim() == 2 && b.dim() == 2, "matmul",
            "needs two matrices, got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const int64_t M = ta ? a.size(1) : a.size(0);
  const int64_t K = ta ? a.size(0) : a.size(1);
  const int64_t Kb = tb ? b.size(1) : b.size(0);
  const int64_t N = tb ? b.size(0) : b.size(1);
  check_arg(K == Kb, "matmul",
            "inner extents differ: " + shape_str(a.shape()) + (ta ? "^T" : "") + " x " +
                shape_str(b.shape()) + (tb ? "^T" : ""));
  Tensor out = Tensor::empty({M, N});
  gemm(ta, tb, M, N, K, a.data(), b.data(), 0.0f, out.data());

  record(out, "matmul", {a, b}, [a, b, ta, tb, M, N, K](const Tensor& g) {
    const float* dc = g.data();
    if (a.requires_grad()) {
      if (!ta)  // dA[M,K] += dC[M,N] op(B)^T
        gemm(false, !tb, M, K, N, dc, b.data(), 1.0f, a.grad_data());
      else      // dA[K,M] += op(B)[K,N] dC^T
        gemm(tb, true, K, M, N, b.data(), dc, 1.0f, a.grad_data());
    }
    if (b.requires_grad()) {
      if (!tb)  // dB[K,N] += op(A)^T dC
        gemm(!ta, false, K, N, M, a.data(), dc, 1.0f, b.grad_data());
      else      // dB[N,K] += dC^T op(A)
        gemm(true, ta, N, K, M, dc, a.data(), 1.0f, b.grad_data());
    }
  });
  return out;
}

Tensor dense(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_arg(x.dim() == 2 && w.dim() == 2, "dense",
            "input " + shape_str(x.shape()) + " must be [N,in] and kernel " + shape_str(w.shape()) +
                " [in,out]");
  check_arg(x.size(1) == w.size(0), "dense",
            "input " + shape_str(x.shape()) + " has " + std::to_string(x.size(1)) +
                " features, kernel " + shape_str(w.shape()) + " expects " + std::to_string(w.size(0)));
  const int64_t N = x.size(0), I = w.size(0), O = w.size(1);
  if (b.defined())
    check_arg(b.dim() == 1 && b.size(0) == O, "dense",
              "bias " + shape_str(b.shape()) + " does not match kernel " + shape_str(w.shape()));
  Tensor out = Tensor::empty({N, O});
  float* y = out.data();
  if (b.defined()) {
    const float* pb = b.data();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) y[n * O + o] = pb[o];
  }
  gemm(false, false, N, O, I, x.data(), w.data(), b.defined() ? 1.0f : 0.0f, y);

  record(out, "dense", {x, w, b}, [x, w, b, N, I, O](const Tensor& g) {
    const float* dy = g.data();
    bool fresh = false;  // a gradient not allocated yet is written (beta 0) instead of zeroed and added to
    if (x.requires_grad()) {
      float* dx = x.grad_data_or_fresh(fresh);
      gemm(false, true, N, I, O, dy, w.data(), fresh ? 0.0f : 1.0f, dx);
    }
    if (w.requires_grad()) {
      float* dw = w.grad_data_or_fresh(fresh);
      gemm(true, false, I, O, N, x.data(), dy, fresh ? 0.0f : 1.0f, dw);
    }
    if (b.defined() && b.requires_grad()) {
      float* db = b.grad_data();
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o) db[o] += dy[n * O + o];
    }
  });
  return out;
}

}  // namespace kiln
