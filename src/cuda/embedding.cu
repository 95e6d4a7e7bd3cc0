// Embedding lookup: one block row per token, its row of the table widened to float32 (the
// residual stream). A quantized table is dequantized row by row exactly as the CPU does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "afq/cuda_ops.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

template <class T>
__global__ void embedding_kernel(const int32_t* tokens, const T* table, int64_t hidden, float* x) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  const int64_t t = blockIdx.y, row = tokens[t];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < hidden; i += int64_t{gridDim.x} * blockDim.x)
    x[t * hidden + i] = to_float(table[row * hidden + i]);
}

// One thread per element: its q from the row's little-endian bit stream (it may straddle two
// words at 3, 5 and 6 bits), then scale * q + bias with a multiply and an add, never an FMA, as
// afq::dequantize_row rounds.
template <class S>
__global__ void embedding_quantized_kernel(const int32_t* tokens, const uint32_t* weight, const S* scales,
                                           const S* biases, int64_t hidden, int bits, int group_size, float* x) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  const int64_t t = blockIdx.y, row = tokens[t];
  const uint32_t* words = weight + row * (hidden * bits / 32);
  const int64_t groups = hidden / group_size;
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < hidden; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t bit = i * bits;
    const int shift = static_cast<int>(bit % 32);
    uint32_t q = words[bit / 32] >> shift;
    if (shift + bits > 32) q |= words[bit / 32 + 1] << (32 - shift);
    q &= mask;
    const int64_t g = row * groups + i / group_size;
    const float scale = to_float(scales[g]), bias = to_float(biases[g]);
    x[t * hidden + i] = __fadd_rn(__fmul_rn(scale, static_cast<float>(q)), bias);
  }
}

dim3 grid(int64_t n, int64_t hidden) { return dim3(grid_for(hidden, 256, 64), static_cast<unsigned>(n)); }

void check_rows(int64_t n, const char* op) {
  if (n < 0 || n > 65535)
    throw Error(std::string("[") + op + "] " + std::to_string(n) + " tokens in one call; allowed: 0 to 65535");
}

}  // namespace

void embedding_lookup(const int32_t* tokens, int64_t n, const void* table, DType table_dtype, int64_t hidden,
                      float* x, CUstream_st* stream) {
  check_rows(n, "embedding_lookup");
  if (n == 0 || hidden == 0) return;
  switch (table_dtype) {
    case DType::BF16:
      check_cuda(
          launch_dependent(embedding_kernel<__nv_bfloat16>, dim3(grid(n, hidden)), dim3(256), 0, stream,
                           device_compute_capability(), tokens, static_cast<const __nv_bfloat16*>(table), hidden, x),
          "embedding_kernel launch");
      break;
    case DType::F16:
      check_cuda(launch_dependent(embedding_kernel<__half>, dim3(grid(n, hidden)), dim3(256), 0, stream,
                                  device_compute_capability(), tokens, static_cast<const __half*>(table), hidden, x),
                 "embedding_kernel launch");
      break;
    case DType::F32:
      check_cuda(launch_dependent(embedding_kernel<float>, dim3(grid(n, hidden)), dim3(256), 0, stream,
                                  device_compute_capability(), tokens, static_cast<const float*>(table), hidden, x),
                 "embedding_kernel launch");
      break;
    default:
      throw Error(dtype_list_error("embedding_lookup", "the table", table_dtype, "BF16, F16, F32"));
  }
  check_launch("embedding_lookup");
}

void embedding_lookup_quantized(const int32_t* tokens, int64_t n, const DeviceQuantizedWeight& table, float* x,
                                CUstream_st* stream) {
  check_rows(n, "embedding_lookup_quantized");
  check_bits(table.bits);
  check_group_size(table.group_size);
  if (n == 0) return;
  const int64_t hidden = table.cols;
  switch (table.scale_dtype) {
    case DType::BF16:
      check_cuda(launch_dependent(
                     embedding_quantized_kernel<__nv_bfloat16>, dim3(grid(n, hidden)), dim3(256), 0, stream,
                     device_compute_capability(), tokens, table.weight, static_cast<const __nv_bfloat16*>(table.scales),
                     static_cast<const __nv_bfloat16*>(table.biases), hidden, table.bits, table.group_size, x),
                 "embedding_quantized_kernel launch");
      break;
    case DType::F16:
      check_cuda(
          launch_dependent(embedding_quantized_kernel<__half>, dim3(grid(n, hidden)), dim3(256), 0, stream,
                           device_compute_capability(), tokens, table.weight, static_cast<const __half*>(table.scales),
                           static_cast<const __half*>(table.biases), hidden, table.bits, table.group_size, x),
          "embedding_quantized_kernel launch");
      break;
    case DType::F32:
      check_cuda(
          launch_dependent(embedding_quantized_kernel<float>, dim3(grid(n, hidden)), dim3(256), 0, stream,
                           device_compute_capability(), tokens, table.weight, static_cast<const float*>(table.scales),
                           static_cast<const float*>(table.biases), hidden, table.bits, table.group_size, x),
          "embedding_quantized_kernel launch");
      break;
    default:
      throw Error(dtype_list_error("embedding_lookup_quantized", "scales", table.scale_dtype, "BF16, F16, F32"));
  }
  check_launch("embedding_lookup_quantized");
}

}  // namespace afq::cuda
