// The affine quantization format of MLX and transformers' MetalConfig (see ../shared/spec):
// w[n,k] ~= scales[n, k/group_size] * q[n,k] + biases[n, k/group_size], with the q's of a row
// packed as one little-endian bit stream into uint32 words.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "afq/tensor.h"

namespace afq {

enum class QuantMethod {
  Mlx,     // MLX's rule: the larger-magnitude edge and zero are exact; scales may be negative
  MinMax,  // transformers' MetalQuantize: scale = (max - min) / (2^bits - 1), bias = min
};

std::optional<QuantMethod> parse_quant_method(std::string_view name);  // "mlx" | "minmax"
std::string_view quant_method_name(QuantMethod method);

inline constexpr int kSupportedBits[] = {2, 3, 4, 5, 6, 8};
inline constexpr int kSupportedGroupSizes[] = {32, 64, 128};

// Throws afq::Error naming the value and the values allowed.
void check_bits(int bits);
void check_group_size(int group_size);

// One quantized linear weight W[N, K].
struct QuantizedWeight {
  Tensor weight;  // U32 [N, K * bits / 32]
  Tensor scales;  // [N, K / group_size], the float dtype of the original weight
  Tensor biases;  // [N, K / group_size], same dtype as scales
  int bits = 0;
  int group_size = 0;

  int64_t rows() const { return weight.dim(0); }                    // N
  int64_t cols() const { return weight.dim(1) * 32 / bits; }        // K

  // All zeros, shaped for an [n, k] weight (k a multiple of group_size), scales in scale_dtype.
  static QuantizedWeight zeros(int64_t n, int64_t k, int bits, int group_size, DType scale_dtype);
};

// Checks that the three tensors agree with each other and with bits / group_size; `name` (a
// tensor or module name) goes into the message.
void validate(const QuantizedWeight& w, std::string_view name);

// Quantizes a 2-D float weight (F32, F16 or BF16) along its last dimension. Scales and biases
// come back in the weight's dtype. Throws on NaN/Inf, on K not divisible by group_size, on a
// weight that is not 2-D, and on unsupported bits / group sizes.
QuantizedWeight quantize(const Tensor& w, int bits, int group_size, QuantMethod method = QuantMethod::Mlx);

// Dequantizes to `dtype` (F32, F16 or BF16); the arithmetic is float32, then rounded once.
Tensor dequantize(const QuantizedWeight& w, DType dtype);

// Dequantizes row `row` into `out` (K floats).
void dequantize_row(const QuantizedWeight& w, int64_t row, float* out);

// Packs k values of `bits` bits (each < 2^bits) into k * bits / 32 words; k * bits % 32 == 0.
void pack_row(const uint8_t* q, int64_t k, int bits, uint32_t* words);
// The inverse of pack_row.
void unpack_row(const uint32_t* words, int64_t k, int bits, uint8_t* q);

// y[M, N] = x[M, K] @ dequant(W)^T (+ bias[N]) in plain scalar float32 loops (a double
// accumulator): the slow reference that every fast kernel is tested against. x may be F32, F16
// or BF16; y is F32.
Tensor reference_affine_qmm_t(const Tensor& x, const QuantizedWeight& w, const Tensor* bias = nullptr);

}  // namespace afq
