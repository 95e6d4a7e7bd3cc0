// afq::cpu::matmul_t for float weights: argument checks; the kernels are in matmul_kernels.cpp.
#include <string>
#include <vector>

#include "afq/cpu.h"
#include "afq/error.h"
#include "src/cpu/qmm.h"
#include "src/cpu/x_rows.h"

namespace afq::cpu {
namespace {

void check_weight(const Tensor& w) {
  if (w.ndim() != 2)
    throw Error("[matmul_t] the weight must be 2-D [N, K], got shape " + shape_to_string(w.shape()));
  if (w.dtype() != DType::F32 && w.dtype() != DType::F16 && w.dtype() != DType::BF16)
    throw Error("[matmul_t] a weight of dtype " + std::string(dtype_name(w.dtype())) +
                " is not supported. The supported dtypes are F32, F16 and BF16.");
}

}  // namespace

void matmul_t(const float* x, int64_t m, const Tensor& w, const float* bias, float* y) {
  check_weight(w);
  MatmulProblem p;
  p.x = x;
  p.m = m;
  p.n = w.dim(0);
  p.k = w.dim(1);
  p.w = w.bytes();
  p.w_dtype = w.dtype();
  p.bias = bias;
  p.y = y;
  if (m == 0 || p.n == 0) return;
  matmul_float(p);
}

Tensor matmul_t(const Tensor& x, const Tensor& w, const Tensor* bias) {
  check_weight(w);
  const XRows rows = x_rows_f32("matmul_t", x, w.dim(1), "the weight's K");
  const std::vector<float> b = bias_f32("matmul_t", bias, w.dim(0));
  Shape out_shape = x.shape();
  out_shape.back() = w.dim(0);
  Tensor y = Tensor::zeros(DType::F32, out_shape);
  matmul_t(rows.data, rows.m, w, bias ? b.data() : nullptr, y.mutable_data<float>());
  return y;
}

std::string simd_target_name() { return simd_target(); }

}  // namespace afq::cpu
