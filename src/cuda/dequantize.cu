// Dequantization on the GPU: W[n, k] = scale * q + bias, rounded once to the output dtype, bit
// for bit as the CPU's afq::dequantize. Serves the large-M GEMM (dequantize a slice of W, then
// cuBLAS) and loading a quantized checkpoint as float.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "afq/cuda.h"
#include "afq/error.h"
#include "src/cuda/dequant.cuh"
#include "src/cuda/qmm.h"

namespace afq::cuda {
namespace {

// Eight outputs (16 bytes of BF16/F16, 32 of F32) as one or two vector stores.
template <class T>
__device__ __forceinline__ void store8(T* dst, const float (&v)[8]) {
  if constexpr (std::is_same_v<T, float>) {
    reinterpret_cast<float4*>(dst)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    *reinterpret_cast<uint4*>(dst) = make_uint4(Pair<T>::from_float2(v[0], v[1]), Pair<T>::from_float2(v[2], v[3]),
                                                Pair<T>::from_float2(v[4], v[5]), Pair<T>::from_float2(v[6], v[7]));
  }
}

// One thread per 8 consecutive q's (Bits bytes of the row's bit stream), so that a warp reads
// and writes contiguous memory. The 8 q's sit in the two aligned words around their first byte.
template <class T, int Bits>
__global__ void dequantize_kernel(const uint32_t* weight, const void* scales, const void* biases, T* out,
                                  int64_t rows, int64_t k, int group_size, DType scale_dtype) {
  const int64_t eights_per_row = k / 8, eights = rows * eights_per_row;
  const int64_t words_per_row = k * Bits / 32, groups_per_row = k / group_size;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < eights; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / eights_per_row, col = (i % eights_per_row) * 8;
    const int64_t byte = (col / 8) * Bits;  // first byte of these 8 q's in the row
    const uint32_t* words = weight + row * words_per_row + byte / 4;
    const int shift = static_cast<int>(byte % 4) * 8;
    const uint32_t lo = __ldg(words);
    // The second word exists whenever the 8 q's reach into it.
    const uint32_t hi = shift + 8 * Bits > 32 ? __ldg(words + 1) : 0u;
    const uint64_t window = ((uint64_t{hi} << 32) | lo) >> shift;
    const int64_t group = row * groups_per_row + col / group_size;
    const float scale = load_as_float(scales, group, scale_dtype), bias = load_as_float(biases, group, scale_dtype);
    float v[8];
    // A multiply, then an add, never fused: the CPU's afq::dequantize rounds the same way.
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const uint32_t q = static_cast<uint32_t>(window >> (e * Bits)) & ((1u << Bits) - 1u);
      v[e] = __fadd_rn(__fmul_rn(scale, q_to_float(q)), bias);
    }
    store8(out + row * k + col, v);
  }
}

template <class T, int Bits>
void launch(const uint32_t* weight, const void* scales, const void* biases, void* out, int64_t rows, int64_t k,
            int group_size, DType scale_dtype, cudaStream_t stream) {
  const int64_t eights = rows * (k / 8);
  const unsigned blocks = static_cast<unsigned>(std::clamp<int64_t>((eights + 255) / 256, 1, 1 << 20));
  dequantize_kernel<T, Bits><<<blocks, 256, 0, stream>>>(weight, scales, biases, static_cast<T*>(out), rows, k,
                                                         group_size, scale_dtype);
  check_cuda(cudaGetLastError(), "dequantize launch");
}

template <class T>
void launch_for_bits(int bits, const uint32_t* weight, const void* scales, const void* biases, void* out,
                     int64_t rows, int64_t k, int group_size, DType scale_dtype, cudaStream_t stream) {
  switch (bits) {
    case 2: return launch<T, 2>(weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case 3: return launch<T, 3>(weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case 4: return launch<T, 4>(weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case 5: return launch<T, 5>(weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case 6: return launch<T, 6>(weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case 8: return launch<T, 8>(weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
  }
}

}  // namespace

void affine_dequantize(const uint32_t* weight, const void* scales, const void* biases, void* out, int64_t rows,
                       int64_t k, int group_size, int bits, DType scale_dtype, DType out_dtype, CUstream_st* stream) {
  check_bits(bits);
  check_group_size(group_size);
  if (rows < 0 || k < 1 || k % group_size != 0)
    throw Error("[affine_dequantize] K=" + std::to_string(k) + " must be a positive multiple of the group size " +
                std::to_string(group_size) + " (rows=" + std::to_string(rows) + ")");
  if (scale_dtype != DType::BF16 && scale_dtype != DType::F16 && scale_dtype != DType::F32)
    throw Error("[affine_dequantize] scales have dtype " + std::string(dtype_name(scale_dtype)) +
                "; allowed: BF16, F16, F32");
  if (rows == 0) return;
  switch (out_dtype) {
    case DType::BF16: return launch_for_bits<__nv_bfloat16>(bits, weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case DType::F16: return launch_for_bits<__half>(bits, weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    case DType::F32: return launch_for_bits<float>(bits, weight, scales, biases, out, rows, k, group_size, scale_dtype, stream);
    default:
      throw Error("[affine_dequantize] output dtype " + std::string(dtype_name(out_dtype)) +
                  " is not supported; allowed: BF16, F16, F32");
  }
}

}  // namespace afq::cuda
