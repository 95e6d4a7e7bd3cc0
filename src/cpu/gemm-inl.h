// SIMD pieces shared by the quantized and the float kernels: widening scales to float32, the
// register-blocked micro-kernel and the blocked GEMM driver that feeds it from a cache-resident
// tile of float weights. Included once per Highway target (see qmm_b4.cpp).

// Per-target include guard (Highway's idiom: toggled by foreach_target.h).
#if defined(AFQ_CPU_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef AFQ_CPU_GEMM_INL_H_
#undef AFQ_CPU_GEMM_INL_H_
#else
#define AFQ_CPU_GEMM_INL_H_
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "afq/cpu.h"
#include "afq/dtype.h"
#include "afq/half.h"
#include "hwy/highway.h"
#include "src/cpu/qmm.h"
#include "src/cpu/scratch.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

inline int64_t RoundUp(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// dst[i] = float32(src[i]) for i < count, for src of dtype F32, F16 or BF16.
inline void WidenToF32(const void* src, DType dtype, int64_t count, float* HWY_RESTRICT dst) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  if (dtype == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  if (dtype == DType::BF16) {
    const hn::Rebind<hwy::bfloat16_t, DF> dbf;
    const auto* s = static_cast<const hwy::bfloat16_t*>(src);
    for (; i + lanes <= count; i += lanes) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dbf, s + i)), df, dst + i);
    for (; i < count; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    return;
  }
  const hn::Rebind<hwy::float16_t, DF> dh;
  const auto* s = static_cast<const hwy::float16_t*>(src);
  for (; i + lanes <= count; i += lanes) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, s + i)), df, dst + i);
  for (; i < count; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
}

// Sum over lanes, as a scalar.
template <class V>
HWY_INLINE float SumLanes(V v) {
  return hn::GetLane(hn::SumOfLanes(DF(), v));
}

// How far ahead of the GEMVs' loads to prefetch weights (rows are contiguous, so this runs
// into the next row near the end of one).
inline constexpr int64_t kPrefetchBytes = 4096;

// Sum of a[i] * b[i], i < count; both padded with zeros to a multiple of the lane count.
HWY_INLINE float PaddedDot(const float* a, const float* b, int64_t count) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  auto acc = hn::Zero(df);
  for (int64_t i = 0; i < count; i += lanes) acc = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc);
  return SumLanes(acc);
}

// The GEMVs' outer loop: rows of W split over the threads, each row's scales and biases widened
// to float32 (zeros past `groups`, up to `groups_padded`), then
//   fn(row, row_bytes_ptr, readable, scales, biases, extra_bias)
// where `readable` is how many bytes from the row's start may be loaded (to the end of W).
template <class Fn>
HWY_INLINE void ForEachWeightRow(const QmmProblem& p, int64_t row_bytes, int64_t groups, int64_t groups_padded,
                                 const Fn& fn) {
  const auto* packed = reinterpret_cast<const uint8_t*>(p.packed);
  const size_t scale_size = dtype_size(p.scale_dtype);
  parallel_for(p.n, [&](int64_t n0, int64_t n1) {
    float* scales = thread_scratch(ScratchSlot::RowScales, static_cast<size_t>(groups_padded));
    float* biases = thread_scratch(ScratchSlot::RowBiases, static_cast<size_t>(groups_padded));
    std::fill(scales + groups, scales + groups_padded, 0.0f);
    std::fill(biases + groups, biases + groups_padded, 0.0f);
    for (int64_t row = n0; row < n1; ++row) {
      WidenToF32(static_cast<const uint8_t*>(p.scales) + row * groups * scale_size, p.scale_dtype, groups, scales);
      WidenToF32(static_cast<const uint8_t*>(p.biases) + row * groups * scale_size, p.scale_dtype, groups, biases);
      fn(row, packed + row * row_bytes, (p.n - row) * row_bytes, scales, biases, p.bias ? p.bias[row] : 0.0f);
    }
  });
}

// The micro-kernel's shape: kMr rows of x times kNr rows of W, as kMr * kNr vector accumulators
// of dot products along k. AVX2 has 16 vector registers, the others 32.
#if HWY_TARGET == HWY_AVX2
inline constexpr int kMr = 3;  // rows of x per micro-tile
inline constexpr int kNr = 3;  // rows of W per micro-tile
#else
inline constexpr int kMr = 4;
inline constexpr int kNr = 4;
#endif

// out[i * kNr + j] = dot(x_rows[i][0:kc], w_rows[j][0:kc]); kc is a multiple of the lane count.
HWY_INLINE void MicroKernel(const float* const* x_rows, const float* const* w_rows, int64_t kc,
                            float* HWY_RESTRICT out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  using V = hn::Vec<DF>;
  V acc[kMr][kNr];
  for (int i = 0; i < kMr; ++i)
    for (int j = 0; j < kNr; ++j) acc[i][j] = hn::Zero(df);
  for (int64_t k = 0; k < kc; k += lanes) {
    V w[kNr];
    for (int j = 0; j < kNr; ++j) w[j] = hn::LoadU(df, w_rows[j] + k);
    for (int i = 0; i < kMr; ++i) {
      const V xv = hn::LoadU(df, x_rows[i] + k);
      for (int j = 0; j < kNr; ++j) acc[i][j] = hn::MulAdd(xv, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < kMr; ++i)
    for (int j = 0; j < kNr; ++j) out[i * kNr + j] = SumLanes(acc[i][j]);
}

// Sizes of the blocked GEMM: a panel of kPanelRows rows of W and kDepth columns, widened to
// float32 once (128 KiB, resident in L2), is reused by every micro-tile of the panel's rows of x.
// 1024 columns rather than 2048: a micro-tile's rows of x and of W (4 KiB each) then fit a 32 KiB
// L1 together, and M=512 ran about 6% faster on the 2-core VM (M=128 the same; BENCHMARKS.md).
inline constexpr int64_t kPanelRows = 32;
inline constexpr int64_t kDepth = 1024;

// y[m, n] = x[m, k] @ W[n, k]^T (+ bias), where fill_row(row, k0, kc, dst) writes the float32
// weights W[row, k0 : k0 + kc] to dst and zeros up to the next multiple of the lane count, or
// returns a pointer to where they already are (float32 weights); else it returns dst.
template <class FillRow>
void BlockedGemm(const float* x, int64_t m, int64_t n, int64_t k, const float* bias, float* y,
                 const FillRow& fill_row) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  // x rows must be readable up to a multiple of the lane count: pad them when K is not.
  const int64_t k_padded = RoundUp(k, lanes);
  if (k_padded != k) {
    float* padded = thread_scratch(ScratchSlot::PaddedX, static_cast<size_t>(m * k_padded));
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(padded + i * k_padded, x + i * k, static_cast<size_t>(k) * sizeof(float));
      std::fill(padded + i * k_padded + k, padded + (i + 1) * k_padded, 0.0f);
    }
    x = padded;
  }
  const int64_t depth = std::min<int64_t>(kDepth, k_padded);
  const int64_t panels = (n + kPanelRows - 1) / kPanelRows;
  // Few panels (small N): split the rows of x too, so that every thread has work.
  const int64_t m_tiles = (m + kMr - 1) / kMr;
  const int64_t m_chunks = std::clamp<int64_t>((num_threads() + panels - 1) / panels, 1, m_tiles);

  parallel_for(panels * m_chunks, [&](int64_t task_begin, int64_t task_end) {
    float* tile = thread_scratch(ScratchSlot::Tile, static_cast<size_t>(kPanelRows * depth));
    const float* tile_rows[kPanelRows];
    float out[kMr * kNr];
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t panel = task / m_chunks, chunk = task % m_chunks;
      const int64_t n0 = panel * kPanelRows, rows = std::min(kPanelRows, n - n0);
      const int64_t m0 = m_tiles * chunk / m_chunks * kMr;
      const int64_t m1 = std::min(m, m_tiles * (chunk + 1) / m_chunks * kMr);
      for (int64_t k0 = 0; k0 < k; k0 += depth) {
        const int64_t kc = std::min(depth, k - k0);
        const int64_t kc_padded = RoundUp(kc, lanes);
        for (int64_t r = 0; r < rows; ++r) tile_rows[r] = fill_row(n0 + r, k0, kc, tile + r * depth);
        for (int64_t i0 = m0; i0 < m1; i0 += kMr) {
          const float* x_rows[kMr];
          for (int i = 0; i < kMr; ++i) x_rows[i] = x + std::min(i0 + i, m - 1) * k_padded + k0;
          for (int64_t j0 = 0; j0 < rows; j0 += kNr) {
            const float* w_rows[kNr];
            for (int j = 0; j < kNr; ++j) w_rows[j] = tile_rows[std::min<int64_t>(j0 + j, rows - 1)];
            MicroKernel(x_rows, w_rows, kc_padded, out);
            // Rows and columns past the edges were computed on duplicates: drop them.
            for (int i = 0; i < kMr && i0 + i < m1; ++i) {
              float* y_row = y + (i0 + i) * n + n0 + j0;
              for (int j = 0; j < kNr && j0 + j < rows; ++j) {
                const float before = k0 == 0 ? (bias ? bias[n0 + j0 + j] : 0.0f) : y_row[j];
                y_row[j] = before + out[i * kNr + j];
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#endif  // AFQ_CPU_GEMM_INL_H_
