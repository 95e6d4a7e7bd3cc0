// matmul_t for float weights (F32, F16, BF16): a GEMV for few rows of x (memory bound: stream
// each weight row once), the blocked GEMM for many. Also the peer of affine_qmm_t in benchmarks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/cpu/matmul_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <string>

#include "hwy/highway.h"
#include "src/cpu/gemm-inl.h"
#include "src/cpu/qmm.h"
#include "src/cpu/qmv_int8-inl.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {

// Loads lanes weights from w (of dtype T) widened to float32.
template <class T>
HWY_INLINE hn::Vec<DF> LoadWeights(const T* w) {
  const DF df;
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(df, w);
  } else {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<T, DF>(), w));
  }
}

template <class T, int kRows>
HWY_INLINE void DotRows(const T* w, const float* const* x, int64_t k, float* out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  hn::Vec<DF> acc[kRows], acc2[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = acc2[r] = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * lanes <= k; i += 2 * lanes) {
    const auto w0 = LoadWeights(w + i), w1 = LoadWeights(w + i + lanes);
    for (int r = 0; r < kRows; ++r) {
      acc[r] = hn::MulAdd(hn::LoadU(df, x[r] + i), w0, acc[r]);
      acc2[r] = hn::MulAdd(hn::LoadU(df, x[r] + i + lanes), w1, acc2[r]);
    }
  }
  for (; i + lanes <= k; i += lanes) {
    const auto w0 = LoadWeights(w + i);
    for (int r = 0; r < kRows; ++r) acc[r] = hn::MulAdd(hn::LoadU(df, x[r] + i), w0, acc[r]);
  }
  alignas(64) float tail[HWY_MAX_BYTES / 4];
  for (int r = 0; r < kRows; ++r) {
    float s = SumLanes(hn::Add(acc[r], acc2[r]));
    if (i < k) {
      float wide[HWY_MAX_BYTES / 4];
      WidenToF32(w + i, std::is_same_v<T, float> ? DType::F32 : std::is_same_v<T, hwy::bfloat16_t> ? DType::BF16 : DType::F16,
                 k - i, wide);
      std::copy(x[r] + i, x[r] + k, tail);
      for (int64_t c = 0; c < k - i; ++c) s += tail[c] * wide[c];
    }
    out[r] = s;
  }
}

template <class T>
void MatmulTyped(const MatmulProblem& p) {
  const T* w = static_cast<const T*>(p.w);
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  if (p.m >= kGemmMinRows) {
    BlockedGemm(p.x, p.m, p.n, p.k, p.bias, p.y, [&](int64_t row, int64_t k0, int64_t kc, float* dst) {
      const T* src = w + row * p.k + k0;
      if constexpr (std::is_same_v<T, float>) {
        if (kc % lanes == 0) return src;  // already float32: no copy
      }
      WidenToF32(src, std::is_same_v<T, float> ? DType::F32 : std::is_same_v<T, hwy::bfloat16_t> ? DType::BF16 : DType::F16,
                 kc, dst);
      std::fill(dst + kc, dst + RoundUp(kc, lanes), 0.0f);
      return static_cast<const float*>(dst);
    });
    return;
  }
  parallel_for(p.n, [&](int64_t n0, int64_t n1) {
    for (int64_t row = n0; row < n1; ++row) {
      for (int64_t i0 = 0; i0 < p.m; i0 += 4) {
        const int64_t rows = std::min<int64_t>(4, p.m - i0);
        const float* xs[4];
        for (int64_t r = 0; r < rows; ++r) xs[r] = p.x + (i0 + r) * p.k;
        float dots[4];
        const T* w_row = w + row * p.k;
        switch (rows) {
          case 1: DotRows<T, 1>(w_row, xs, p.k, dots); break;
          case 2: DotRows<T, 2>(w_row, xs, p.k, dots); break;
          case 3: DotRows<T, 3>(w_row, xs, p.k, dots); break;
          default: DotRows<T, 4>(w_row, xs, p.k, dots); break;
        }
        for (int64_t r = 0; r < rows; ++r) p.y[(i0 + r) * p.n + row] = dots[r] + (p.bias ? p.bias[row] : 0.0f);
      }
    }
  });
}

void MatmulFloat(const MatmulProblem& p) {
  switch (p.w_dtype) {
    case DType::BF16: return MatmulTyped<hwy::bfloat16_t>(p);
    case DType::F16: return MatmulTyped<hwy::float16_t>(p);
    default: return MatmulTyped<float>(p);
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

#if HWY_TARGET != HWY_SCALAR
bool Int8Preferred() { return kInt8Preferred; }
#else
bool Int8Preferred() { return false; }
#endif

}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace afq::cpu {
HWY_EXPORT(MatmulFloat);
HWY_EXPORT(TargetName);
HWY_EXPORT(Int8Preferred);
void matmul_float(const MatmulProblem& p) { HWY_DYNAMIC_DISPATCH(MatmulFloat)(p); }
std::string simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }
bool int8_preferred() { return HWY_DYNAMIC_DISPATCH(Int8Preferred)(); }
std::vector<int64_t> compiled_simd_targets() {
  std::vector<int64_t> targets;
  for (int64_t t = hwy::SupportedTargets() & HWY_TARGETS; t != 0; t &= t - 1) targets.push_back(t & -t);
  return targets;
}
}  // namespace afq::cpu
#endif
