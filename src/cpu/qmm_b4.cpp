// Instantiates the 4-bit affine_qmm_t kernels for every compiled SIMD target (one file per
// bit width spreads the compile time over files).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/cpu/qmm_b4.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "src/cpu/qmm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {
void QmmBits4(const QmmProblem& p) { Qmm<4>(p); }
}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace afq::cpu {
HWY_EXPORT(QmmBits4);
void qmm_bits4(const QmmProblem& p) { HWY_DYNAMIC_DISPATCH(QmmBits4)(p); }
}  // namespace afq::cpu
#endif
