// Random weights and inputs, and the float64 matmul the CPU kernels are checked against.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "afq/half.h"
#include "afq/quant.h"
#include "afq/tensor.h"

namespace afq::cpu {

// Normal(0, 1) values, stored in dtype.
inline Tensor random_tensor(Shape shape, DType dtype, std::mt19937& rng) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = normal(rng);
    switch (dtype) {
      case DType::F32: t.mutable_data<float>()[i] = v; break;
      case DType::BF16: t.mutable_data<uint16_t>()[i] = f32_to_bf16(v); break;
      case DType::F16: t.mutable_data<uint16_t>()[i] = f32_to_f16(v); break;
      default: break;
    }
  }
  return t;
}

// A weight with uniform random q's and scales of both signs (as MLX's quantize makes them).
inline QuantizedWeight random_quantized_weight(int64_t n, int64_t k, int bits, int group_size, DType scale_dtype,
                                               std::mt19937& rng) {
  QuantizedWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.weight = Tensor::zeros(DType::U32, {n, k * bits / 32});
  std::uniform_int_distribution<int> q_dist(0, (1 << bits) - 1);
  std::vector<uint8_t> q(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    for (auto& v : q) v = static_cast<uint8_t>(q_dist(rng));
    pack_row(q.data(), k, bits, w.weight.mutable_data<uint32_t>() + r * (k * bits / 32));
  }
  Tensor scales = random_tensor({n, k / group_size}, DType::F32, rng);
  Tensor biases = random_tensor({n, k / group_size}, DType::F32, rng);
  for (int64_t i = 0; i < scales.numel(); ++i) scales.mutable_data<float>()[i] *= 0.1f;
  w.scales = to_dtype(scales, scale_dtype);
  w.biases = to_dtype(biases, scale_dtype);
  return w;
}

// y = x @ w^T (+ bias) in float64, from float32 copies of x, w and bias.
inline std::vector<double> float64_matmul_t(const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias ? float_at(*bias, j) : 0.0;
      for (int64_t c = 0; c < k; ++c) s += double{float_at(x, i * k + c)} * float_at(w, j * k + c);
      y[i * n + j] = s;
    }
  return y;
}

}  // namespace afq::cpu
