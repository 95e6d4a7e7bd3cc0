// Dequantization: w = scale * q + bias in float32 (a multiply, then an add: no FMA, as
// transformers' _affine_dequantize_tensor computes it), rounded once to the output dtype.
#include <vector>

#include "afq/error.h"
#include "afq/half.h"
#include "afq/quant.h"

namespace afq {

void dequantize_row(const QuantizedWeight& w, int64_t row, float* out) {
  check_bits(w.bits);
  check_group_size(w.group_size);  // also bounds the buffer below
  const int64_t k = w.cols();
  const int64_t groups = k / w.group_size;
  const int64_t words_per_group = w.group_size * w.bits / 32;  // whole words for every supported pair
  const uint32_t* words = w.weight.data<uint32_t>() + row * (k * w.bits / 32);
  uint8_t q[128];  // one group's codes; group_size <= 128
  for (int64_t g = 0; g < groups; ++g) {
    unpack_row(words + g * words_per_group, w.group_size, w.bits, q);
    const float scale = float_at(w.scales, row * groups + g);
    const float bias = float_at(w.biases, row * groups + g);
    float* dst = out + g * w.group_size;
    for (int i = 0; i < w.group_size; ++i) {
      const float scaled = scale * static_cast<float>(q[i]);
      dst[i] = scaled + bias;
    }
  }
}

Tensor dequantize(const QuantizedWeight& w, DType dtype) {
  validate(w, "dequantize");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw Error("[dequantize] the output dtype must be F32, F16 or BF16, got " + std::string(dtype_name(dtype)));
  const int64_t n = w.rows(), k = w.cols();
  Tensor out = Tensor::zeros(dtype, {n, k});
  std::vector<float> row(k);
  for (int64_t r = 0; r < n; ++r) {
    float* dst = dtype == DType::F32 ? out.mutable_data<float>() + r * k : row.data();
    dequantize_row(w, r, dst);
    if (dtype == DType::F32) continue;
    uint16_t* o = out.mutable_data<uint16_t>() + r * k;
    for (int64_t i = 0; i < k; ++i) o[i] = dtype == DType::BF16 ? f32_to_bf16(row[i]) : f32_to_f16(row[i]);
  }
  return out;
}

}  // namespace afq
