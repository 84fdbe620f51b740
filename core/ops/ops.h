// The differentiable ops. Each op's forward and backward live in one function in one of
// core/ops/*.cpp. Layout conventions (chosen for speed, see README "Layout"):
//   images: NHWC [N,H,W,C]; conv kernels: [kh,kw,C_in,C_out] (Keras' layout);
//   dense kernels: [in,out]; per-channel vectors: [C].
// Every shape error throws std::invalid_argument naming the op and the shapes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/kernels/batch_norm.h"
#include "core/tensor.h"

namespace kiln {

// --- elementwise, with NumPy broadcasting (shapes aligned from the right) ---------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float s);
Tensor mul(const Tensor& a, float s);
Tensor neg(const Tensor& a);
Tensor square(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, float s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, float s) { return mul(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return mul(a, s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// --- reductions --------------------------------------------------------------------------
// Sum / mean over the given axes (negative allowed); keepdim keeps them as extent 1.
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor sum(const Tensor& a);   // all elements -> []
Tensor mean(const Tensor& a);  // all elements -> []

// --- shape -------------------------------------------------------------------------------
Tensor reshape(const Tensor& a, const Shape& shape);
// [N, ...] -> [N, prod(...)]
Tensor flatten(const Tensor& a);

// --- linear algebra ----------------------------------------------------------------------
// a: [M,K] (or [K,M] if trans_a), b: [K,N] (or [N,K] if trans_b) -> [M,N]. One cblas_sgemm.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x: [N,in], w: [in,out], b: [out] or undefined -> [N,out]
Tensor dense(const Tensor& x, const Tensor& w, const Tensor& b);

// --- softmax and loss (last axis) --------------------------------------------------------
Tensor softmax(const Tensor& a);
Tensor log_softmax(const Tensor& a);
// logits: [N,K], targets: [N,K] (one-hot or any distribution) -> [] mean over N of
// -sum_k t_k log softmax(logits)_k. Stable (log-sum-exp); gradient (softmax - t) / N.
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& targets);

// --- convolutional-network ops -----------------------------------------------------------
enum class Padding { Valid, Same };  // Keras/TensorFlow meanings ("same": extra pad bottom/right)

// x: [N,H,W,C], w: [kh,kw,C,F], b: [F] or undefined -> [N,Ho,Wo,F].
// im2col + one sgemm per chunk of the batch.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride = 1,
              Padding padding = Padding::Same);
// relu(conv2d(...)) as one op (a Conv2D with activation "relu"): the ReLU runs in place on the
// convolution's output and its backward is a mask on the way into the convolution's.
Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, int stride = 1,
                   Padding padding = Padding::Same);
// x: [N,H,W,C] -> [N,Ho,Wo,C]; padded cells never win the max.
Tensor max_pool2d(const Tensor& x, int kernel = 2, int stride = 2, Padding padding = Padding::Valid);

// Batch normalisation over every axis but the last (channels): x: [..., C].
// Training: normalises with the batch mean and biased variance and updates
// running = momentum * running + (1 - momentum) * batch (Keras' convention; running_var
// uses the biased batch variance). Inference: uses the running statistics.
// gamma, beta, running_mean, running_var: [C]. Running statistics are updated in place and
// are not differentiated. With sync (training only), the batch is split over processes and
// its statistics are those of every process's rows together (synchronised batch norm).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  Tensor& running_mean, Tensor& running_var, bool training,
                  float momentum = 0.99f, float eps = 1e-3f, const BatchStatsReduce& sync = {});
// relu(batch_norm(...)) as one op, the tail of every conv -> batch norm -> ReLU block: one pass
// over the activations forward and none for the ReLU backward, and the batch norm's own output
// is never stored. Same results as the two ops (Sequential fuses such pairs by itself).
Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       Tensor& running_mean, Tensor& running_var, bool training,
                       float momentum = 0.99f, float eps = 1e-3f, const BatchStatsReduce& sync = {});

// Inverted dropout: in training each element is zeroed with probability `rate` and the
// rest scaled by 1/(1-rate); the mask depends only on (seed, element index). Identity when
// !training or rate == 0.
Tensor dropout(const Tensor& x, float rate, bool training, uint64_t seed);

// lambda * sum(w^2) -> []
Tensor l2_penalty(const Tensor& w, float lambda);

}  // namespace kiln

// --- pooling and axis order (for imported Keras models) --------------------------------------
namespace kiln {

// x: [N,H,W,C] -> [N,Ho,Wo,C], the mean of each window (Keras' AveragePooling2D). With "same"
// padding the padded cells are not counted, as in Keras. Geometry as max_pool2d.
Tensor avg_pool2d(const Tensor& x, int kernel = 2, int stride = 2, Padding padding = Padding::Valid);

// x: any rank, dims a permutation of its axes -> y with y.shape[k] = x.shape[dims[k]]
// (numpy.transpose). A copy. [N,C,H,W] with dims {0,2,3,1} -> [N,H,W,C].
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);

}  // namespace kiln

// --- joining and padding (graph models: Concatenate, ZeroPadding2D) ---------------------------
namespace kiln {

// Tensors of one rank whose extents agree on every axis but `axis` (negative counts from the
// end) -> one tensor, their extents along `axis` added up, in order (numpy.concatenate).
// concat({[N,H,W,3], [N,H,W,5]}, -1) -> [N,H,W,8].
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);

// x: [N,H,W,C] -> [N, top+H+bottom, left+W+right, C] with zeros around each image.
Tensor zero_pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right);

}  // namespace kiln
