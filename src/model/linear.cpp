#include "afq/cpu.h"
#include "afq/model.h"

namespace afq {

void Linear::forward(const float* x, int64_t m, float* y) const {
  const float* b = bias.defined() ? bias.data<float>() : nullptr;
  if (quantized)
    cpu::affine_qmm_t(x, m, *quantized, b, y);
  else
    cpu::matmul_t(x, m, weight, b, y);
}

}  // namespace afq
