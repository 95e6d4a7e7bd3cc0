// The slow reference y = x @ dequant(W)^T (+ bias): dequantize a row of W, then a double dot
// product with every row of x. Every fast kernel is tested against it.
#include <vector>

#include "afq/error.h"
#include "afq/quant.h"

namespace afq {

Tensor reference_affine_qmm_t(const Tensor& x, const QuantizedWeight& w, const Tensor* bias) {
  validate(w, "reference_affine_qmm_t");
  const int64_t n = w.rows(), k = w.cols();
  if (x.ndim() < 1 || x.dim(-1) != k)
    throw Error("[affine_qmm_t] x " + shape_to_string(x.shape()) + " does not end in K = " + std::to_string(k));
  if (bias && bias->numel() != n)
    throw Error("[affine_qmm_t] bias has " + std::to_string(bias->numel()) + " values, expected N = " +
                std::to_string(n));
  const int64_t m = x.numel() / k;
  Shape y_shape = x.shape();
  y_shape.back() = n;
  Tensor y = Tensor::zeros(DType::F32, y_shape);
  std::vector<float> xs(x.numel());
  for (int64_t i = 0; i < x.numel(); ++i) xs[i] = float_at(x, i);
  std::vector<float> row(k);
  float* out = y.mutable_data<float>();
  for (int64_t j = 0; j < n; ++j) {
    dequantize_row(w, j, row.data());
    const double b = bias ? float_at(*bias, j) : 0.0;
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0;
      for (int64_t c = 0; c < k; ++c) sum += double(xs[i * k + c]) * double(row[c]);
      out[i * n + j] = static_cast<float>(sum + b);
    }
  }
  return y;
}

}  // namespace afq
