#include "src/cpu/x_rows.h"

#include <string>

#include "afq/error.h"

namespace afq::cpu {

XRows x_rows_f32(std::string_view op, const Tensor& x, int64_t k, std::string_view k_name) {
  const std::string prefix = "[" + std::string(op) + "] ";
  if (!x.defined() || x.ndim() < 1)
    throw Error(prefix + "x must have at least one dimension, got shape " + shape_to_string(x.shape()));
  if (x.dtype() != DType::F32 && x.dtype() != DType::F16 && x.dtype() != DType::BF16)
    throw Error(prefix + "x of dtype " + std::string(dtype_name(x.dtype())) +
                " is not supported. The supported dtypes are F32, F16 and BF16.");
  if (x.dim(-1) != k)
    throw Error(prefix + "x of shape " + shape_to_string(x.shape()) + " has last dimension " +
                std::to_string(x.dim(-1)) + ", which must equal " + std::string(k_name) + " (" +
                std::to_string(k) + ")");
  XRows rows;
  rows.m = k == 0 ? 0 : x.numel() / k;
  if (x.dtype() == DType::F32) {
    rows.data = x.data<float>();
  } else {
    rows.converted.resize(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) rows.converted[i] = float_at(x, i);
    rows.data = rows.converted.data();
  }
  return rows;
}

std::vector<float> bias_f32(std::string_view op, const Tensor* bias, int64_t n) {
  std::vector<float> b;
  if (!bias) return b;
  if (!is_float(bias->dtype()) || bias->ndim() != 1 || bias->dim(0) != n)
    throw Error("[" + std::string(op) + "] bias must be a float tensor of shape [" + std::to_string(n) +
                "], got " + std::string(dtype_name(bias->dtype())) + " " + shape_to_string(bias->shape()));
  b.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) b[i] = float_at(*bias, i);
  return b;
}

}  // namespace afq::cpu
