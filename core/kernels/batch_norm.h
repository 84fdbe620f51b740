// Batch-normalisation kernels over x viewed as [M, C] (M = N*H*W for NHWC images), per
// channel c. Fast (parallel, vectorisable) and naive versions with the same contracts.
#pragma once

#include <cstdint>
#include <functional>

namespace kiln {

// Synchronised batch norm, where one batch is split over several processes: called with n
// per-channel sums, replaces each by its sum over all processes (an allreduce). Every process
// must make the same calls in the same order.
using BatchStatsReduce = std::function<void(double* values, int64_t n)>;

// Training forward: mean[c], var[c] = batch mean and biased variance; inv_std[c] =
// 1/sqrt(var+eps); y = gamma * (x - mean) * inv_std + beta. Writes y, mean, inv_std, and
// var (the biased batch variance, for the running-statistics update). With reduce, the
// statistics are those of the rows of every process together. Returns how many rows they
// cover (M without reduce).
//
// With relu, both forwards write max(0, y) instead of y: a ReLU after the batch norm in the
// same pass, without y ever stored (see batch_norm_backward_train's relu_out).
int64_t batch_norm_forward_train(int64_t M, int64_t C, const float* x, const float* gamma,
                                 const float* beta, float eps, float* y, float* mean, float* var,
                                 float* inv_std, const BatchStatsReduce* reduce = nullptr,
                                 bool relu = false);
// Inference forward with given statistics: y = gamma * (x - mean) / sqrt(var + eps) + beta.
void batch_norm_forward_eval(int64_t M, int64_t C, const float* x, const float* gamma,
                             const float* beta, const float* mean, const float* var, float eps,
                             float* y, bool relu = false);
// Training backward (batch statistics depend on x). Adds into dx, dgamma, dbeta (each may
// be null when not needed). With reduce (statistics over `rows` rows of all processes, as the
// forward returned): dx takes the other processes' dy into account through the shared
// statistics; dgamma and dbeta stay this process's part (summed later with the other
// gradients). With relu_out (the output of a forward with relu), dy is the gradient of that
// ReLU's output, and the batch norm's own is taken as relu_out > 0 ? dy : 0 on the fly. With
// overwrite_dx, dx is written (=), not added into (for a gradient buffer not yet filled).
void batch_norm_backward_train(int64_t M, int64_t C, const float* x, const float* gamma,
                               const float* mean, const float* inv_std, const float* dy,
                               float* dx, float* dgamma, float* dbeta,
                               const BatchStatsReduce* reduce = nullptr, int64_t rows = 0,
                               const float* relu_out = nullptr, bool overwrite_dx = false);

void batch_norm_forward_train_naive(int64_t M, int64_t C, const float* x, const float* gamma,
                                    const float* beta, float eps, float* y, float* mean, float* var,
                                    float* inv_std);
void batch_norm_backward_train_naive(int64_t M, int64_t C, const float* x, const float* gamma,
                                     const float* mean, const float* inv_std, const float* dy,
                                     float* dx, float* dgamma, float* dbeta);

}  // namespace kiln
