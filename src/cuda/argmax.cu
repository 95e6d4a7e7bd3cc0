// Greedy sampling on the device: the index of the largest logit, so that a decode step copies
// back one int32 instead of the whole vocabulary. One block: a vocabulary is at most a few
// hundred thousand values, a few microseconds for one SM once its loads are in flight together.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>

#include "afq/cuda_ops.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

constexpr int kThreads = 1024;

// (value, index) pairs ordered as std::max_element picks: larger value, then lower index. NaN
// compares false, so it never wins.
__device__ __forceinline__ bool better(float v, int32_t i, float best, int32_t best_i) {
  return v > best || (v == best && i < best_i);
}

// One block per row: row blockIdx.x of values, its result into out[blockIdx.x].
template <class T>
__global__ void argmax_kernel(const T* values, int64_t n, int32_t* out) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  values += blockIdx.x * n;
  out += blockIdx.x;
  __shared__ float best_values[32];
  __shared__ int32_t best_indices[32];
  float best = -INFINITY;
  int32_t best_i = INT_MAX;
  // kLoads values per thread and pass, all loaded before any is compared: one pass costs one
  // memory latency instead of kLoads (a 128k vocabulary is 16 passes, not 128 round trips).
  constexpr int kLoads = 8;
  const int64_t pass = int64_t{kLoads} * blockDim.x;
  for (int64_t base = threadIdx.x; base < n; base += pass) {
    float v[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int64_t i = base + int64_t{j} * blockDim.x;
      v[j] = i < n ? to_float(values[i]) : -INFINITY;
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int32_t i = static_cast<int32_t>(base + int64_t{j} * blockDim.x);
      if (base + int64_t{j} * blockDim.x < n && better(v[j], i, best, best_i)) {
        best = v[j];
        best_i = i;
      }
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const float v = __shfl_xor_sync(0xFFFFFFFFu, best, offset);
    const int32_t i = __shfl_xor_sync(0xFFFFFFFFu, best_i, offset);
    if (better(v, i, best, best_i)) {
      best = v;
      best_i = i;
    }
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    best_values[warp] = best;
    best_indices[warp] = best_i;
  }
  __syncthreads();
  if (warp != 0) return;
  best = lane < blockDim.x / 32 ? best_values[lane] : -INFINITY;
  best_i = lane < blockDim.x / 32 ? best_indices[lane] : INT_MAX;
  for (int offset = 16; offset > 0; offset /= 2) {
    const float v = __shfl_xor_sync(0xFFFFFFFFu, best, offset);
    const int32_t i = __shfl_xor_sync(0xFFFFFFFFu, best_i, offset);
    if (better(v, i, best, best_i)) {
      best = v;
      best_i = i;
    }
  }
  if (lane == 0) *out = best_i == INT_MAX ? 0 : best_i;  // all NaN: index 0
}

}  // namespace

void argmax(const void* values, DType dtype, int64_t n, int32_t* out, CUstream_st* stream) {
  argmax_rows(values, dtype, 1, n, out, stream);
}

void argmax_rows(const void* values, DType dtype, int64_t rows, int64_t n, int32_t* out, CUstream_st* stream) {
  if (n < 1 || n > INT_MAX - 1 || rows < 1 || rows > INT_MAX)
    throw Error("[argmax] rows=" + std::to_string(rows) + " n=" + std::to_string(n) +
                " not allowed: at least one row of 1 to 2^31 - 2 values");
  const dim3 grid(static_cast<unsigned>(rows));
  switch (dtype) {
    case DType::F32:
      check_cuda(launch_dependent(argmax_kernel<float>, grid, dim3(kThreads), 0, stream, device_compute_capability(),
                                  static_cast<const float*>(values), n, out),
                 "argmax_kernel launch");
      break;
    case DType::F16:
      check_cuda(launch_dependent(argmax_kernel<__half>, grid, dim3(kThreads), 0, stream, device_compute_capability(),
                                  static_cast<const __half*>(values), n, out),
                 "argmax_kernel launch");
      break;
    case DType::BF16:
      check_cuda(launch_dependent(argmax_kernel<__nv_bfloat16>, grid, dim3(kThreads), 0, stream,
                                  device_compute_capability(), static_cast<const __nv_bfloat16*>(values), n, out),
                 "argmax_kernel launch");
      break;
    default:
      throw Error(dtype_list_error("argmax", "values", dtype, "F32, F16, BF16"));
  }
}

}  // namespace afq::cuda
