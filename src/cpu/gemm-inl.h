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

// The same two rows at a time: row i with row i + half (half = n / 2 rounded up; a last odd row
// alone), so that each thread streams two regions of W front to back:
//   fn(rows[2], data[2], readable, scales[2], biases[2], extra[2], count)
// with count 2 or 1, and `readable` the bytes that may be loaded from data[count - 1].
template <class Fn>
HWY_INLINE void ForEachWeightRowPair(const QmmProblem& p, int64_t row_bytes, int64_t groups, int64_t groups_padded,
                                     const Fn& fn) {
  const auto* packed = reinterpret_cast<const uint8_t*>(p.packed);
  const size_t scale_size = dtype_size(p.scale_dtype);
  const int64_t half = (p.n + 1) / 2;
  parallel_for(half, [&](int64_t pair0, int64_t pair1) {
    float* scales = thread_scratch(ScratchSlot::RowScales, static_cast<size_t>(2 * groups_padded));
    float* biases = thread_scratch(ScratchSlot::RowBiases, static_cast<size_t>(2 * groups_padded));
    const float* row_scales[2] = {scales, scales + groups_padded};
    const float* row_biases[2] = {biases, biases + groups_padded};
    for (int i = 0; i < 2; ++i) {
      std::fill(scales + i * groups_padded + groups, scales + (i + 1) * groups_padded, 0.0f);
      std::fill(biases + i * groups_padded + groups, biases + (i + 1) * groups_padded, 0.0f);
    }
    for (int64_t pair = pair0; pair < pair1; ++pair) {
      const int64_t rows[2] = {pair, pair + half};
      const int count = rows[1] < p.n ? 2 : 1;
      const uint8_t* data[2] = {packed + rows[0] * row_bytes, packed + rows[1] * row_bytes};
      float extra[2] = {0.0f, 0.0f};
      for (int i = 0; i < count; ++i) {
        WidenToF32(static_cast<const uint8_t*>(p.scales) + rows[i] * groups * scale_size, p.scale_dtype, groups,
                   scales + i * groups_padded);
        WidenToF32(static_cast<const uint8_t*>(p.biases) + rows[i] * groups * scale_size, p.scale_dtype, groups,
                   biases + i * groups_padded);
        extra[i] = p.bias ? p.bias[rows[i]] : 0.0f;
      }
      fn(rows, data, (p.n - rows[count - 1]) * row_bytes, row_scales, row_biases, extra, count);
    }
  });
}

// The GEMM for many rows of x (GemmByOuterProducts). Its micro-kernel holds kOuterRowsW rows of
// W against an m-tile of kOuterVectorsX vectors' worth of rows of x, as kOuterRowsW *
// kOuterVectorsX vectors of y^T. Each step along k loads the m-tile's x at that k (x laid out
// k-major) and broadcasts one weight per row of W, so each value loaded feeds several FMAs and
// nothing is reduced across lanes. Registers: the accumulators, the x vectors and a broadcast.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
inline constexpr int kOuterVectorsX = 1;  // x vectors per m-tile (16 rows)
inline constexpr int kOuterRowsW = 24;    // rows of W per micro-tile: 24 of 32 registers accumulate
#elif HWY_TARGET == HWY_AVX2
inline constexpr int kOuterVectorsX = 1;  // 8 rows
inline constexpr int kOuterRowsW = 12;    // 12 of 16 registers
#elif HWY_ARCH_ARM
inline constexpr int kOuterVectorsX = 2;  // 8 rows (NEON: 4 lanes, 32 registers)
inline constexpr int kOuterRowsW = 12;
#elif HWY_TARGET == HWY_SCALAR
inline constexpr int kOuterVectorsX = 1;
inline constexpr int kOuterRowsW = 4;
#else
inline constexpr int kOuterVectorsX = 2;  // 4-lane targets with 16 registers
inline constexpr int kOuterRowsW = 6;
#endif

// Its sizes. A panel of kOuterPanelRows rows of W and kOuterDepth columns is widened to float32
// once per thread (about 200 KiB with AVX-512, resident in L2) and used by every m-tile of x; x
// is laid out k-major one block of kOuterDepth columns at a time, for all threads. Rows of the
// panel are kOuterTileStride floats apart, a constant, so that the micro-kernel addresses all of
// them from one register (24 row pointers do not fit in registers), and not a multiple of 4 KiB
// apart, so that rows read together do not share L1 sets.
inline constexpr int64_t kOuterPanelRows = 2 * kOuterRowsW;
inline constexpr int64_t kOuterDepth = 1024;
inline constexpr int64_t kOuterTileStride = kOuterDepth + 16;

// y[i * n + j] = (accumulate ? y[i * n + j] : bias[j]) + sum over kk < kc of
// w[j * kOuterTileStride + kk] * x_t[kk * tile_m + i], for the rows j < cols of W and i < rows of
// x in one m-tile (tile_m = kOuterVectorsX * lanes); bias may be null (zeros).
HWY_INLINE void OuterMicroKernel(const float* HWY_RESTRICT x_t, const float* HWY_RESTRICT w, int64_t kc,
                                 bool accumulate, const float* bias, float* HWY_RESTRICT y, int64_t n, int64_t rows,
                                 int64_t cols) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t tile_m = kOuterVectorsX * lanes;
  using V = hn::Vec<DF>;
  // The loops over j and v are unrolled by pragma: left to itself the compiler keeps the 24-trip
  // loop rolled, and the accumulators then live in memory instead of registers.
  V acc[kOuterRowsW][kOuterVectorsX];
  HWY_UNROLL(32)
  for (int j = 0; j < kOuterRowsW; ++j) {
    HWY_UNROLL(4)
    for (int v = 0; v < kOuterVectorsX; ++v) acc[j][v] = hn::Zero(df);
  }
  for (int64_t kk = 0; kk < kc; ++kk) {
    V xv[kOuterVectorsX];
    HWY_UNROLL(4)
    for (int v = 0; v < kOuterVectorsX; ++v) xv[v] = hn::LoadU(df, x_t + kk * tile_m + v * lanes);
    HWY_UNROLL(32)
    for (int j = 0; j < kOuterRowsW; ++j) {
      const V wj = hn::Set(df, w[j * kOuterTileStride + kk]);
      HWY_UNROLL(4)
      for (int v = 0; v < kOuterVectorsX; ++v) acc[j][v] = hn::MulAdd(wj, xv[v], acc[j][v]);
    }
  }
  // The accumulators hold y^T; through a small buffer they are added to rows of y, where each
  // row's kOuterRowsW outputs are contiguous.
  HWY_ALIGN float out[kOuterRowsW * kOuterVectorsX * (HWY_MAX_BYTES / sizeof(float))];
  HWY_UNROLL(32)
  for (int j = 0; j < kOuterRowsW; ++j) {
    HWY_UNROLL(4)
    for (int v = 0; v < kOuterVectorsX; ++v) hn::Store(acc[j][v], df, out + j * tile_m + v * lanes);
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* y_row = y + i * n;
    for (int64_t j = 0; j < cols; ++j) {
      const float before = accumulate ? y_row[j] : (bias ? bias[j] : 0.0f);
      y_row[j] = before + out[j * tile_m + i];
    }
  }
}

// y[m, n] = x[m, k] @ W[n, k]^T (+ bias), where fill_row(row, k0, kc, dst) writes the float32
// weights W[row, k0 : k0 + kc] to dst and zeros up to the next multiple of the lane count, or
// returns a pointer to where they already are (float32 weights); else it returns dst.
template <class FillRow>
void GemmByOuterProducts(const float* x, int64_t m, int64_t n, int64_t k, const float* bias, float* y,
                         const FillRow& fill_row) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t tile_m = kOuterVectorsX * lanes;
  const int64_t m_tiles = (m + tile_m - 1) / tile_m, m_padded = m_tiles * tile_m;
  const int64_t depth = std::min<int64_t>(kOuterDepth, k);
  const int64_t panels = (n + kOuterPanelRows - 1) / kOuterPanelRows;
  // Few panels (small N): split the m-tiles too, so that every thread has work.
  const int64_t m_chunks = std::clamp<int64_t>((num_threads() + panels - 1) / panels, 1, m_tiles);
  float* x_t = thread_scratch(ScratchSlot::TransposedX, static_cast<size_t>(m_padded * depth));

  for (int64_t k0 = 0; k0 < k; k0 += depth) {
    const int64_t kc = std::min(depth, k - k0);
    // x[:, k0 : k0 + kc] as [m-tile][kk][row of the tile], zeros past m.
    parallel_for(m_tiles, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        float* dst = x_t + t * kc * tile_m;
        for (int64_t i = 0; i < tile_m; ++i) {
          const int64_t row = t * tile_m + i;
          if (row >= m) {
            for (int64_t kk = 0; kk < kc; ++kk) dst[kk * tile_m + i] = 0.0f;
            continue;
          }
          const float* src = x + row * k + k0;
          for (int64_t kk = 0; kk < kc; ++kk) dst[kk * tile_m + i] = src[kk];
        }
      }
    });
    parallel_for(panels * m_chunks, [&](int64_t task_begin, int64_t task_end) {
      float* tile = thread_scratch(ScratchSlot::Tile, static_cast<size_t>(kOuterPanelRows * kOuterTileStride));
      for (int64_t task = task_begin; task < task_end; ++task) {
        const int64_t panel = task / m_chunks, chunk = task % m_chunks;
        const int64_t n0 = panel * kOuterPanelRows, rows = std::min(kOuterPanelRows, n - n0);
        const int64_t t_begin = m_tiles * chunk / m_chunks, t_end = m_tiles * (chunk + 1) / m_chunks;
        if (t_begin == t_end) continue;
        for (int64_t r = 0; r < kOuterPanelRows; ++r) {
          float* dst = tile + r * kOuterTileStride;
          if (r >= rows) {  // past N: the micro-kernel reads whole kOuterRowsW rows; their sums are dropped
            std::fill(dst, dst + kc, 0.0f);
            continue;
          }
          const float* row = fill_row(n0 + r, k0, kc, dst);
          if (row != dst) std::memcpy(dst, row, static_cast<size_t>(kc) * sizeof(float));
        }
        for (int64_t t = t_begin; t < t_end; ++t)
          for (int64_t j0 = 0; j0 < rows; j0 += kOuterRowsW)
            OuterMicroKernel(x_t + t * kc * tile_m, tile + j0 * kOuterTileStride, kc, k0 > 0,
                             bias ? bias + n0 + j0 : nullptr, y + t * tile_m * n + n0 + j0, n,
                             std::min(tile_m, m - t * tile_m), std::min<int64_t>(kOuterRowsW, rows - j0));
      }
    });
  }
}

// The GEMM for fewer rows of x (GemmByDots): a micro-tile of kDotRowsX rows of x times
// kDotRowsW rows of W, as kDotRowsX * kDotRowsW vector accumulators of dot products along k,
// reduced across lanes at the end. AVX2 has 16 vector registers, the others 32.
#if HWY_TARGET == HWY_AVX2
inline constexpr int kDotRowsX = 3;  // rows of x per micro-tile
inline constexpr int kDotRowsW = 3;  // rows of W per micro-tile
#else
inline constexpr int kDotRowsX = 4;
inline constexpr int kDotRowsW = 4;
#endif

// out[i * kDotRowsW + j] = dot(x_rows[i][0:kc], w_rows[j][0:kc]); kc is a multiple of the lane count.
HWY_INLINE void DotMicroKernel(const float* const* x_rows, const float* const* w_rows, int64_t kc,
                               float* HWY_RESTRICT out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  using V = hn::Vec<DF>;
  V acc[kDotRowsX][kDotRowsW];
  for (int i = 0; i < kDotRowsX; ++i)
    for (int j = 0; j < kDotRowsW; ++j) acc[i][j] = hn::Zero(df);
  for (int64_t k = 0; k < kc; k += lanes) {
    V w[kDotRowsW];
    for (int j = 0; j < kDotRowsW; ++j) w[j] = hn::LoadU(df, w_rows[j] + k);
    for (int i = 0; i < kDotRowsX; ++i) {
      const V xv = hn::LoadU(df, x_rows[i] + k);
      for (int j = 0; j < kDotRowsW; ++j) acc[i][j] = hn::MulAdd(xv, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < kDotRowsX; ++i)
    for (int j = 0; j < kDotRowsW; ++j) out[i * kDotRowsW + j] = SumLanes(acc[i][j]);
}

// Sizes of the blocked GEMM: a panel of kDotPanelRows rows of W and kDotDepth columns, widened to
// float32 once (128 KiB, resident in L2), is reused by every micro-tile of the panel's rows of x.
// 1024 columns rather than 2048: a micro-tile's rows of x and of W (4 KiB each) then fit a 32 KiB
// L1 together, and M=512 ran about 6% faster on the 2-core VM (M=128 the same; BENCHMARKS.md).
inline constexpr int64_t kDotPanelRows = 32;
inline constexpr int64_t kDotDepth = 1024;

// y[m, n] = x[m, k] @ W[n, k]^T (+ bias), where fill_row(row, k0, kc, dst) writes the float32
// weights W[row, k0 : k0 + kc] to dst and zeros up to the next multiple of the lane count, or
// returns a pointer to where they already are (float32 weights); else it returns dst.
template <class FillRow>
void GemmByDots(const float* x, int64_t m, int64_t n, int64_t k, const float* bias, float* y, const FillRow& fill_row) {
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
  const int64_t depth = std::min<int64_t>(kDotDepth, k_padded);
  const int64_t panels = (n + kDotPanelRows - 1) / kDotPanelRows;
  // Few panels (small N): split the rows of x too, so that every thread has work.
  const int64_t m_tiles = (m + kDotRowsX - 1) / kDotRowsX;
  const int64_t m_chunks = std::clamp<int64_t>((num_threads() + panels - 1) / panels, 1, m_tiles);

  parallel_for(panels * m_chunks, [&](int64_t task_begin, int64_t task_end) {
    float* tile = thread_scratch(ScratchSlot::Tile, static_cast<size_t>(kDotPanelRows * depth));
    const float* tile_rows[kDotPanelRows];
    float out[kDotRowsX * kDotRowsW];
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t panel = task / m_chunks, chunk = task % m_chunks;
      const int64_t n0 = panel * kDotPanelRows, rows = std::min(kDotPanelRows, n - n0);
      const int64_t m0 = m_tiles * chunk / m_chunks * kDotRowsX;
      const int64_t m1 = std::min(m, m_tiles * (chunk + 1) / m_chunks * kDotRowsX);
      for (int64_t k0 = 0; k0 < k; k0 += depth) {
        const int64_t kc = std::min(depth, k - k0);
        const int64_t kc_padded = RoundUp(kc, lanes);
        for (int64_t r = 0; r < rows; ++r) tile_rows[r] = fill_row(n0 + r, k0, kc, tile + r * depth);
        for (int64_t i0 = m0; i0 < m1; i0 += kDotRowsX) {
          const float* x_rows[kDotRowsX];
          for (int i = 0; i < kDotRowsX; ++i) x_rows[i] = x + std::min(i0 + i, m - 1) * k_padded + k0;
          for (int64_t j0 = 0; j0 < rows; j0 += kDotRowsW) {
            const float* w_rows[kDotRowsW];
            for (int j = 0; j < kDotRowsW; ++j) w_rows[j] = tile_rows[std::min<int64_t>(j0 + j, rows - 1)];
            DotMicroKernel(x_rows, w_rows, kc_padded, out);
            // Rows and columns past the edges were computed on duplicates: drop them.
            for (int i = 0; i < kDotRowsX && i0 + i < m1; ++i) {
              float* y_row = y + (i0 + i) * n + n0 + j0;
              for (int j = 0; j < kDotRowsW && j0 + j < rows; ++j) {
                const float before = k0 == 0 ? (bias ? bias[n0 + j0 + j] : 0.0f) : y_row[j];
                y_row[j] = before + out[i * kDotRowsW + j];
              }
            }
          }
        }
      }
    }
  });
}

// From this many rows of x the outer-product GEMM wins; below it the dot-product one, whose
// micro-tiles waste fewer rows (the 2-core VM, BENCHMARKS.md).
inline constexpr int64_t kOuterProductMinRows = 64;

// y[m, n] = x[m, k] @ W[n, k]^T (+ bias), with fill_row as for the two GEMMs above.
template <class FillRow>
void BlockedGemm(const float* x, int64_t m, int64_t n, int64_t k, const float* bias, float* y,
                 const FillRow& fill_row) {
  if (m >= kOuterProductMinRows) return GemmByOuterProducts(x, m, n, k, bias, y, fill_row);
  GemmByDots(x, m, n, k, bias, y, fill_row);
}

}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#endif  // AFQ_CPU_GEMM_INL_H_
