// Instantiates the 2-bit affine_qmm_t kernels for every compiled SIMD target (one file per
// bit width spreads the compile time over files).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/cpu/qmm_b2.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "src/cpu/qmm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {
void QmmBits2(const QmmProblem& p) { Qmm<2>(p); }
}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace afq::cpu {
HWY_EXPORT(QmmBits2);
void qmm_bits2(const QmmProblem& p) { HWY_DYNAMIC_DISPATCH(QmmBits2)(p); }
}  // namespace afq::cpu
#endif
