// Argument checks and float32 conversion shared by the Tensor forms of affine_qmm_t and matmul_t.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "afq/tensor.h"

namespace afq::cpu {

// x [..., K] as float32 rows: data points into x when it is F32, else into `converted`.
struct XRows {
  const float* data = nullptr;
  int64_t m = 0;
  std::vector<float> converted;
};

// Throws afq::Error (prefixed with [op]) unless x is a float tensor with at least one dimension
// whose last one is k (`k_name` says where k comes from).
XRows x_rows_f32(std::string_view op, const Tensor& x, int64_t k, std::string_view k_name);

// bias [n] widened to float32; empty when bias is null. Throws on another shape or dtype.
std::vector<float> bias_f32(std::string_view op, const Tensor* bias, int64_t n);

}  // namespace afq::cpu
