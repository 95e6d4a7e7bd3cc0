// CPU kernels: y = x @ W^T (+ bias) for affine-quantized and float weights, SIMD through
// Highway (the best instruction set of the running CPU is chosen at run time) and threads
// from one persistent pool.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "afq/quant.h"
#include "afq/tensor.h"

namespace afq::cpu {

// y[M, N] = x[M, K] @ dequant(W[N, K])^T (+ bias[N]). x is F32, F16 or BF16 of shape [M, K]
// (or [..., K]: leading dimensions are flattened into M); bias is [N] of any float dtype.
// y is F32 with x's leading shape and N.
Tensor affine_qmm_t(const Tensor& x, const QuantizedWeight& w, const Tensor* bias = nullptr);

// The same on raw float32 buffers: x [m, K], bias [N] or nullptr, y [m, N]. Allocates nothing
// per call beyond scratch that is kept for the next call; used by the model's forward pass.
void affine_qmm_t(const float* x, int64_t m, const QuantizedWeight& w, const float* bias, float* y);

// y[M, N] = x[M, K] @ w[N, K]^T (+ bias[N]) for float weights (F32, F16 or BF16).
Tensor matmul_t(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr);
void matmul_t(const float* x, int64_t m, const Tensor& w, const float* bias, float* y);

// out[i] = exp((x[i] - shift) * scale), i < n (a vector exponential, within a few ulp of
// std::exp): the sampler's unnormalized probabilities.
void exp_shifted_scaled(const float* x, int64_t n, float shift, float scale, float* out);

// Runs fn over [0, n) split into at most num_threads() contiguous ranges, on the persistent
// pool (the calling thread takes one range). A call from inside fn runs serially.
void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

// Threads of the pool: the number of cores, or AFQ_NUM_THREADS when set (or the host's count
// while a host parallel_for is set).
int num_threads();

// Hands parallel_for to a host application's threads instead of afq's pool, for hosts that have
// a pool of their own on the same cores (a PyTorch extension passes at::parallel_for: two pools
// that both spin fight for the cores). run(n, fn) must call fn over contiguous ranges covering
// [0, n), at most threads() of them; nested calls must run serially. Empty functions restore afq's pool.
struct HostParallelFor {
  std::function<void(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn)> run;
  std::function<int()> threads;
};
void set_host_parallel_for(HostParallelFor host);

// Resizes the pool (tests and the benchmark's --threads); threads <= 0 goes back to the default.
void set_num_threads(int threads);

// The SIMD instruction set the kernels run with on this CPU ("AVX3", "AVX2", "NEON", ...).
std::string simd_target_name();

}  // namespace afq::cpu
