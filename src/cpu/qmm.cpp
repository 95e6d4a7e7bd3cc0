// afq::cpu::affine_qmm_t: argument checks and the choice of kernel by bit width; the kernels
// themselves are in qmm-inl.h.
#include <cstdlib>
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

thread_local QmmPath path_forced_on_thread = QmmPath::Auto;

}  // namespace

QmmPath forced_qmm_path() {
  static const QmmPath from_env = [] {
    const char* env = std::getenv("AFQ_CPU_QMM");
    const std::string v = env ? env : "";
    if (v == "float") return QmmPath::Float;
    if (v == "int8") return QmmPath::Int8;
    return QmmPath::Auto;
  }();
  return path_forced_on_thread != QmmPath::Auto ? path_forced_on_thread : from_env;
}

QmmPath qmm_path(int64_t m) {
  const QmmPath forced = forced_qmm_path();
  if (forced != QmmPath::Auto) return forced;
  return m <= kInt8MaxRows && int8_preferred() ? QmmPath::Int8 : QmmPath::Float;
}

ForceQmmPath::ForceQmmPath(QmmPath path) : previous_(path_forced_on_thread) { path_forced_on_thread = path; }
ForceQmmPath::~ForceQmmPath() { path_forced_on_thread = previous_; }

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
  p.path = qmm_path(m);
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
