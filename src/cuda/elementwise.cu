// Elementwise ops of the layer: SwiGLU, the residual add into the float32 stream, bias adds.
// Memory-bound one-liners; each thread strides over the array.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "afq/cuda_ops.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

__global__ void swiglu_kernel(const __nv_bfloat16* gate, const __nv_bfloat16* up, __nv_bfloat16* out, int64_t count) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = to_float(gate[i]);
    out[i] = from_float<__nv_bfloat16>(g / (1.0f + expf(-g)) * to_float(up[i]));  // silu(g) * up, as the CPU
  }
}

__global__ void swiglu_rows_kernel(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int64_t count, int64_t inter) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / inter, c = i % inter;
    const float g = to_float(gate_up[r * 2 * inter + c]);
    out[i] = from_float<__nv_bfloat16>(g / (1.0f + expf(-g)) * to_float(gate_up[r * 2 * inter + inter + c]));
  }
}

__global__ void add_residual_kernel(float* x, const __nv_bfloat16* y, int64_t count) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x)
    x[i] += to_float(y[i]);
}

template <class T>
__global__ void add_bias_kernel(T* y, const float* bias, int64_t count, int64_t n) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = from_float<T>(to_float(y[i]) + bias[i % n]);
}

// dst[*position * count + i] = src[i]: a decode step's value row into the KV cache.
__global__ void store_at_position_kernel(__nv_bfloat16* dst, const __nv_bfloat16* src, int64_t count,
                                         const int32_t* position) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  dst += int64_t{*position} * count;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = src[i];
}

void check_count(int64_t count, const char* op) {
  if (count < 0) throw Error(std::string("[") + op + "] negative count " + std::to_string(count));
}

}  // namespace

void swiglu(const void* gate, const void* up, void* out, int64_t count, CUstream_st* stream) {
  check_count(count, "swiglu");
  if (count == 0) return;
  check_cuda(launch_dependent(swiglu_kernel, dim3(grid_for(count, 256, 4096)), dim3(256), 0, stream,
                              device_compute_capability(), static_cast<const __nv_bfloat16*>(gate),
                              static_cast<const __nv_bfloat16*>(up), static_cast<__nv_bfloat16*>(out), count),
             "swiglu_kernel launch");
  check_launch("swiglu");
}

void swiglu_rows(const void* gate_up, int64_t rows, int64_t inter, void* out, CUstream_st* stream) {
  if (rows < 0 || inter < 1)
    throw Error("[swiglu_rows] rows=" + std::to_string(rows) + " inter=" + std::to_string(inter) + " not allowed");
  const int64_t count = rows * inter;
  if (count == 0) return;
  check_cuda(launch_dependent(swiglu_rows_kernel, dim3(grid_for(count, 256, 4096)), dim3(256), 0, stream,
                              device_compute_capability(), static_cast<const __nv_bfloat16*>(gate_up),
                              static_cast<__nv_bfloat16*>(out), count, inter),
             "swiglu_rows_kernel launch");
  check_launch("swiglu_rows");
}

void add_residual(float* x, const void* y, int64_t count, CUstream_st* stream) {
  check_count(count, "add_residual");
  if (count == 0) return;
  check_cuda(launch_dependent(add_residual_kernel, dim3(grid_for(count, 256, 4096)), dim3(256), 0, stream,
                              device_compute_capability(), x, static_cast<const __nv_bfloat16*>(y), count),
             "add_residual_kernel launch");
  check_launch("add_residual");
}

void store_at_position(void* dst, const void* src, int64_t count, const int32_t* position, CUstream_st* stream) {
  check_count(count, "store_at_position");
  if (count == 0) return;
  check_cuda(launch_dependent(store_at_position_kernel, dim3(grid_for(count, 256, 4096)), dim3(256), 0, stream,
                              device_compute_capability(), static_cast<__nv_bfloat16*>(dst),
                              static_cast<const __nv_bfloat16*>(src), count, position),
             "store_at_position_kernel launch");
  check_launch("store_at_position");
}

void add_bias(void* y, DType y_dtype, const float* bias, int64_t rows, int64_t n, CUstream_st* stream) {
  if (rows < 0 || n < 1) throw Error("[add_bias] rows=" + std::to_string(rows) + " n=" + std::to_string(n) + " not allowed");
  const int64_t count = rows * n;
  if (count == 0) return;
  const unsigned blocks = grid_for(count, 256, 4096);
  switch (y_dtype) {
    case DType::BF16:
      check_cuda(launch_dependent(add_bias_kernel<__nv_bfloat16>, dim3(blocks), dim3(256), 0, stream,
                                  device_compute_capability(), static_cast<__nv_bfloat16*>(y), bias, count, n),
                 "add_bias_kernel launch");
      break;
    case DType::F16:
      check_cuda(launch_dependent(add_bias_kernel<__half>, dim3(blocks), dim3(256), 0, stream,
                                  device_compute_capability(), static_cast<__half*>(y), bias, count, n),
                 "add_bias_kernel launch");
      break;
    case DType::F32:
      check_cuda(launch_dependent(add_bias_kernel<float>, dim3(blocks), dim3(256), 0, stream,
                                  device_compute_capability(), static_cast<float*>(y), bias, count, n),
                 "add_bias_kernel launch");
      break;
    default:
      throw Error(dtype_list_error("add_bias", "y", y_dtype, "BF16, F16, F32"));
  }
  check_launch("add_bias");
}

}  // namespace afq::cuda
