// afq::cpu::affine_qmm_t: argument checks and the choice of kernel by bit width; the kernels
// themselves are in qmm-inl.h.
#include <string>
#include <vector>

#include "afq/cpu.h"
#include "afq/error.h"
#include "src/cpu/qmm.h"
#include "src/cpu/x_rows.h"

namespace afq::cpu {
namespace {

void check_scales_dtype(const QuantizedWeight& w) {
  DType d = w.scales.dtype();
  if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
    throw Error("[affine_qmm_t] scales of dtype " + std::string(dtype_name(d)) +
                " are not supported. The supported dtypes are F32, F16 and BF16.");
}

}  // namespace

void affine_qmm_t(const float* x, int64_t m, const QuantizedWeight& w, const float* bias, float* y) {
  check_scales_dtype(w);
  QmmProblem p;
  p.x = x;
  p.m = m;
  p.n = w.rows();
  p.k = w.cols();
  p.packed = w.weight.data<uint32_t>();
  p.scales = w.scales.bytes();
  p.biases = w.biases.bytes();
  p.scale_dtype = w.scales.dtype();
  p.bits = w.bits;
  p.group_size = w.group_size;
  p.bias = bias;
  p.y = y;
  if (m == 0 || p.n == 0) return;
  switch (w.bits) {
    case 2: return qmm_bits2(p);
    case 3: return qmm_bits3(p);
    case 4: return qmm_bits4(p);
    case 5: return qmm_bits5(p);
    case 6: return qmm_bits6(p);
    case 8: return qmm_bits8(p);
    default: check_bits(w.bits);
  }
}

Tensor affine_qmm_t(const Tensor& x, const QuantizedWeight& w, const Tensor* bias) {
  validate(w, "weight");
  const XRows rows = x_rows_f32("affine_qmm_t", x, w.cols(), "the weight's K");
  const std::vector<float> b = bias_f32("affine_qmm_t", bias, w.rows());
  Shape out_shape = x.shape();
  out_shape.back() = w.rows();
  Tensor y = Tensor::zeros(DType::F32, out_shape);
  affine_qmm_t(rows.data, rows.m, w, bias ? b.data() : nullptr, y.mutable_data<float>());
  return y;
}

}  // namespace afq::cpu
