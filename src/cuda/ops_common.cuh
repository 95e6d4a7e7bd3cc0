// Device helpers of the model ops (embedding, norm, RoPE, attention, elementwise, argmax):
// element conversions to and from float32, and warp / block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "afq/dtype.h"
#include "afq/error.h"
#include "src/cuda/qmm.h"

namespace afq::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024), returned to every thread. `shared`
// holds 32 floats; the leading __syncthreads lets a caller reduce twice in a row.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.f;
  return warp_sum(v);
}

// Blocks to cover `count` items with `threads` threads each, capped (kernels loop over the rest).
inline unsigned grid_for(int64_t count, int threads, int64_t cap = 65535) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

// Throws afq::Error when the launch just made failed.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// The current device's compute capability, for launch_dependent (dependent_launch.cuh).
inline int device_compute_capability() { return current_device_info().compute_capability; }

inline std::string dtype_list_error(const char* op, const char* what, DType got, const char* allowed) {
  return std::string("[") + op + "] " + what + " has dtype " + std::string(dtype_name(got)) + "; allowed: " + allowed;
}

}  // namespace afq::cuda
