// Device helpers shared by the kernel families: reading scales of any float dtype, pulling the
// q's out of a packed row, and turning them into floats without an integer-to-float instruction.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "afq/dtype.h"

namespace afq::cuda {

// Element i of a BF16, F16 or F32 array as float. The dtype is uniform across the grid, so the
// branch costs nothing next to the loads.
__device__ __forceinline__ float load_as_float(const void* p, int64_t i, DType dtype) {
  if (dtype == DType::BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (dtype == DType::F16) return __half2float(static_cast<const __half*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// q (< 2^23) as float: placed in the mantissa of 2^23 it reads as 2^23 + q, and one exact
// subtraction removes the 2^23 (a LOP3 and an FADD instead of the slow I2F).
__device__ __forceinline__ float q_to_float(uint32_t q) {
  return __uint_as_float(q | 0x4B000000u) - 8388608.0f;
}

// Element i of a pack as 1 + q / 2^Bits: q goes to the top Bits of the mantissa of 1.0, one
// shift and one LOP3 with no subtraction, so a dot product with x costs three instructions per
// weight instead of four. The GEMV undoes the offset per group: with u = 1 + q / 2^Bits,
//   s * (x . q) + b * sum(x) = (2^Bits s) * (x . u) + (b - 2^Bits s) * sum(x).
template <int Bits>
__device__ __forceinline__ float q_to_unit_float(const uint32_t* words, int i);

// Element i (0..31) of a pack of 32 q's stored in Bits consecutive words: the row is one
// little-endian bit stream, so for 3, 5 and 6 bits an element may straddle two words. With i a
// compile-time constant this folds to one shift (or funnel shift) and one mask.
template <int Bits>
__device__ __forceinline__ uint32_t unpack_q(const uint32_t* words, int i) {
  const int bit = i * Bits, word = bit / 32, shift = bit % 32;
  constexpr uint32_t mask = (1u << Bits) - 1u;
  if (shift + Bits <= 32) return (words[word] >> shift) & mask;
  return __funnelshift_r(words[word], words[word + 1], shift) & mask;
}

template <int Bits>
__device__ __forceinline__ float q_to_unit_float(const uint32_t* words, int i) {
  return __uint_as_float(0x3F800000u | (unpack_q<Bits>(words, i) << (23 - Bits)));
}

// The x element types: two per 32-bit word, widened to float.
template <class T>
struct Pair;
template <>
struct Pair<__nv_bfloat16> {
  // bf16 is the top half of a float: a shift and a mask, no conversion instruction.
  static __device__ __forceinline__ float2 to_float2(uint32_t u) {
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xFFFF0000u));
  }
  static __device__ __forceinline__ uint32_t from_float2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct Pair<__half> {
  static __device__ __forceinline__ float2 to_float2(uint32_t u) {
    return __half22float2(*reinterpret_cast<const __half2*>(&u));
  }
  static __device__ __forceinline__ uint32_t from_float2(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};

}  // namespace afq::cuda
