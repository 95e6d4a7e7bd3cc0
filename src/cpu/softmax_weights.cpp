// exp((x - shift) * scale) over an array with Highway's vector exponential: the sampler's
// unnormalized probabilities over a whole vocabulary (128k exponentials a token) cost a tenth of
// the scalar loop.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/cpu/softmax_weights.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <cmath>
#include <cstdint>

#include "afq/cpu.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void ExpShiftedScaled(const float* x, int64_t n, float shift, float scale, float* out) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto s = hn::Set(d, shift), k = hn::Set(d, scale);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Exp(d, hn::Mul(hn::Sub(hn::LoadU(d, x + i), s), k)), d, out + i);
  for (; i < n; ++i) out[i] = std::exp((x[i] - shift) * scale);
}

}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace afq::cpu {
HWY_EXPORT(ExpShiftedScaled);
void exp_shifted_scaled(const float* x, int64_t n, float shift, float scale, float* out) {
  HWY_DYNAMIC_DISPATCH(ExpShiftedScaled)(x, n, shift, scale, out);
}
}  // namespace afq::cpu
#endif
