// affine_qmm_t kernels for one bit width, on the on-disk layout (no repacking):
// - QmvRows: the decode GEMV. Streams each packed row once, unpacks in registers and takes the
//   dot product with up to 4 rows of x at a time; rows of W are split across threads.
// - DequantRowTile + BlockedGemm: the prompt GEMM. Widens a panel of W to a float32 tile once
//   and reuses it for every row of x.
//
// The GEMV never forms w = scale * q + bias. Per group g of a row,
//   sum_k x[k] * w[k] = scale_g * sum_k x[k] * q[k] + bias_g * sum_k x[k],
// so the inner loop is one FMA per weight on q itself, each vector of partial sums is scaled
// once (lanes of one vector may belong to different groups: the scale is per lane), and the
// bias term is one short dot product of the biases with per-group sums of x. Scales may be
// negative (MLX stores the larger-magnitude edge exactly); nothing here assumes otherwise.
//
// Unpacking without shifts: a lane holds e consecutive elements of the bit stream (a whole
// word for bits 2, 4, 8; a 3-byte window for 3, 5, 6). Element j of the lane sits at bit
// p = j * bits (+ the window's shift, for 5 bits), and AND with mask << p leaves q * 2^p, a
// small integer that converts to float exactly. We multiply x by 2^-p instead, once per call
// when x is laid out for the kernel (exact: a power of two). Only an element reaching bit 31
// is shifted down (it would read as negative).

#if defined(AFQ_CPU_QMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef AFQ_CPU_QMM_INL_H_
#undef AFQ_CPU_QMM_INL_H_
#else
#define AFQ_CPU_QMM_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "afq/cpu.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "src/cpu/gemm-inl.h"
#include "src/cpu/qmm.h"
#include "src/cpu/qmv_int8-inl.h"
#include "src/cpu/scratch.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {

// HWY_SCALAR (the fallback for x86 CPUs without AVX2: one lane, no byte shuffles) runs every
// shape through the GEMM path below.
#if HWY_TARGET != HWY_SCALAR

// How the GEMV lays a bit width out in 32-bit lanes.
template <int kBits>
struct LanePacking {
  static constexpr int kElements = kBits == 2 ? 16 : (kBits == 3 || kBits == 4) ? 8 : 4;  // per lane
  static constexpr int kLaneBits = kElements * kBits;  // 32, 24, 32, 20, 24, 32
  static constexpr bool kWholeWords = kLaneBits == 32;  // bits 2, 4, 8: lane i is word i
  static constexpr uint32_t kMask = (1u << kBits) - 1;
};

// The most lanes any target has (SVE up to 2048 bits).
inline constexpr int kMaxLanes = HWY_MAX_BYTES / 4;

// Per-lane constants of the GEMV for the target's vector width.
template <int kBits>
struct QmvTables {
  using P = LanePacking<kBits>;
  alignas(64) int32_t word_of_block[kMaxLanes];     // window mode: 32-bit lane -> source word
  alignas(64) uint8_t byte_of_lane[kMaxLanes * 4];  // window mode: byte shuffle within blocks
  alignas(64) uint32_t mask[P::kElements][kMaxLanes];
  alignas(64) float x_factor[P::kElements][kMaxLanes];  // 2^-p, see the comment at the top
  alignas(64) int32_t scale_lane[kMaxLanes];           // lane -> group within the vector's groups

  QmvTables(int64_t lanes, int group_size) {
    for (int64_t l = 0; l < lanes; ++l) {
      const int64_t block = l / 4, lane_in_block = l % 4;
      // A block of 4 lanes needs 4 * kLaneBits / 8 bytes from byte block_start on; move the
      // words holding them into the block, then each lane's 3 bytes into place.
      const int64_t block_start = block * 4 * P::kLaneBits / 8;
      const int64_t first_word = block_start / 4;
      word_of_block[l] = static_cast<int32_t>(std::min<int64_t>(first_word + lane_in_block, lanes - 1));
      const int64_t lane_bit = l * P::kLaneBits;
      const int64_t rel = lane_bit / 8 - first_word * 4;
      for (int b = 0; b < 4; ++b) byte_of_lane[l * 4 + b] = static_cast<uint8_t>(std::min<int64_t>(rel + std::min(b, 2), 15));
      const int shift = P::kWholeWords ? 0 : static_cast<int>(lane_bit % 8);
      for (int j = 0; j < P::kElements; ++j) {
        const int p = shift + j * kBits;
        const bool shifted_down = p + kBits > 31;
        mask[j][l] = P::kMask << p;
        x_factor[j][l] = shifted_down ? 1.0f : std::ldexp(1.0f, -p);
      }
      scale_lane[l] = static_cast<int32_t>(l * P::kElements / group_size);
    }
  }
};

// The GEMV's layout of one row of x, per vector v of lanes * e elements:
// packed[(v * e + j) * lanes + l] = x[v * lanes * e + l * e + j] * x_factor[j][l], zero past K.
template <int kBits>
void PackXRow(const float* x, int64_t k, int64_t vectors, const QmvTables<kBits>& t, float* packed) {
  constexpr int e = LanePacking<kBits>::kElements;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  for (int64_t v = 0; v < vectors; ++v)
    for (int j = 0; j < e; ++j)
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t col = (v * lanes + l) * e + j;
        packed[(v * e + j) * lanes + l] = col < k ? x[col] * t.x_factor[j][l] : 0.0f;
      }
}

// Calls f(std::integral_constant<int, J>) for J = 0 .. N-1, unrolled.
template <int N, class F>
HWY_INLINE void Unroll(const F& f) {
  [&]<int... J>(std::integer_sequence<int, J...>) HWY_ATTR { (f(std::integral_constant<int, J>()), ...); }(
      std::make_integer_sequence<int, N>());
}

// y_rows[r] = dot(x_r, dequant(row)) for kRows rows of x (without the bias terms), where
// `row` is one packed row of W of `row_bytes` bytes, readable up to `readable` bytes (the
// rows after it), and row_scales its scales widened to float32 (padded).
template <int kBits, int kRows>
HWY_INLINE void QmvRow(const uint8_t* row, int64_t row_bytes, int64_t readable, const float* row_scales,
                       int group_size, const float* const* x_packed, int64_t vectors,
                       const QmvTables<kBits>& t, float* dots) {
  using P = LanePacking<kBits>;
  constexpr int e = P::kElements;
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::RebindToUnsigned<DF> du;
  const hn::Repartition<uint8_t, decltype(du)> du8;
  using VF = hn::Vec<DF>;
  using VU = hn::Vec<decltype(du)>;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t vector_bytes = lanes * P::kLaneBits / 8;
  const int64_t vector_elements = lanes * e;
  const bool one_group_per_vector = vector_elements <= group_size;
  const int64_t groups_per_vector = one_group_per_vector ? 0 : vector_elements / group_size;
  const auto scale_index = hn::SetTableIndices(df, t.scale_lane);
  const auto word_index = hn::SetTableIndices(du, t.word_of_block);
  const auto byte_index = hn::LoadU(du8, t.byte_of_lane);
  const bool multi_block = lanes > 4;

  VF acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = hn::Zero(df);

  // Each vector loads 4 * lanes bytes: in place while that stays readable, else from a copy.
  const int64_t in_place = readable >= 4 * lanes ? std::min(vectors, (readable - 4 * lanes) / vector_bytes + 1) : 0;
  alignas(64) uint8_t copy[HWY_MAX_BYTES];
  for (int64_t v = 0; v < vectors; ++v) {
    const uint8_t* src = row + v * vector_bytes;
    if (HWY_UNLIKELY(v >= in_place)) {
      const int64_t start = v * vector_bytes;
      std::memset(copy, 0, sizeof(copy));
      std::memcpy(copy, src, static_cast<size_t>(std::max<int64_t>(0, std::min(vector_bytes, row_bytes - start))));
      src = copy;
    }
    // The hardware prefetcher alone leaves a core short of memory bandwidth here: each cache
    // line of weights takes dozens of instructions, so few misses are in flight at once.
    hwy::Prefetch(src + kPrefetchBytes);
    VU raw = hn::BitCast(du, hn::LoadU(du8, src));
    if constexpr (!P::kWholeWords) {
      if (multi_block) raw = hn::TableLookupLanes(raw, word_index);
      raw = hn::BitCast(du, hn::TableLookupBytes(hn::BitCast(du8, raw), byte_index));
    }
    const float* xv[kRows];
    for (int r = 0; r < kRows; ++r) xv[r] = x_packed[r] + v * e * lanes;
    // Two chains of partial sums for one row of x, to hide the FMA latency.
    VF part[kRows], part2[kRows];
    for (int r = 0; r < kRows; ++r) part[r] = part2[r] = hn::Zero(df);
    Unroll<e>([&](auto jc) HWY_ATTR {
      constexpr int j = decltype(jc)::value;
      VU q;
      if constexpr (P::kWholeWords && j == e - 1) {
        q = hn::ShiftRight<kBits * j>(raw);
      } else if constexpr (kBits == 5) {
        q = hn::And(raw, hn::LoadU(du, t.mask[j]));  // the window's shift differs per lane
      } else {
        q = hn::And(raw, hn::Set(du, P::kMask << (j * kBits)));
      }
      const VF qf = hn::ConvertTo(df, hn::BitCast(di, q));
      for (int r = 0; r < kRows; ++r) {
        const VF xj = hn::LoadU(df, xv[r] + j * lanes);
        if (kRows <= 2 && (j & 1)) {
          part2[r] = hn::MulAdd(xj, qf, part2[r]);
        } else {
          part[r] = hn::MulAdd(xj, qf, part[r]);
        }
      }
    });
    const VF scale = one_group_per_vector
                         ? hn::Set(df, row_scales[v * vector_elements / group_size])
                         : hn::TableLookupLanes(hn::LoadU(df, row_scales + v * groups_per_vector), scale_index);
    for (int r = 0; r < kRows; ++r) {
      if (kRows <= 2) part[r] = hn::Add(part[r], part2[r]);
      acc[r] = hn::MulAdd(scale, part[r], acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) dots[r] = SumLanes(acc[r]);
}

template <int kBits>
void Qmv(const QmmProblem& p) {
  using P = LanePacking<kBits>;
  constexpr int e = P::kElements;
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t vectors = (p.k + lanes * e - 1) / (lanes * e);
  const int64_t groups = p.k / p.group_size;
  const int64_t groups_padded = RoundUp(groups, lanes) + lanes;  // TableLookupLanes loads a whole vector
  const int64_t row_bytes = p.k * kBits / 8;
  const QmvTables<kBits> tables(lanes, p.group_size);

  // x in the kernel's layout, and its sums per group (for the bias term).
  const int64_t packed_floats = vectors * e * lanes;
  float* x_packed = thread_scratch(ScratchSlot::PackedX, static_cast<size_t>(p.m * packed_floats));
  float* x_sums = thread_scratch(ScratchSlot::XSums, static_cast<size_t>(p.m * groups_padded));
  for (int64_t i = 0; i < p.m; ++i) {
    const float* x = p.x + i * p.k;
    PackXRow<kBits>(x, p.k, vectors, tables, x_packed + i * packed_floats);
    float* sums = x_sums + i * groups_padded;
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0.0f;
      for (int64_t c = 0; c < p.group_size; ++c) s += x[g * p.group_size + c];
      sums[g] = s;
    }
    std::fill(sums + groups, sums + groups_padded, 0.0f);
  }

  ForEachWeightRow(p, row_bytes, groups, groups_padded,
                   [&](int64_t row, const uint8_t* row_data, int64_t readable, const float* scales,
                       const float* biases, float extra) {
    for (int64_t i0 = 0; i0 < p.m; i0 += 4) {
      const int64_t rows = std::min<int64_t>(4, p.m - i0);
      const float* xs[4];
      for (int64_t r = 0; r < rows; ++r) xs[r] = x_packed + (i0 + r) * packed_floats;
      float dots[4];
      switch (rows) {
        case 1: QmvRow<kBits, 1>(row_data, row_bytes, readable, scales, p.group_size, xs, vectors, tables, dots); break;
        case 2: QmvRow<kBits, 2>(row_data, row_bytes, readable, scales, p.group_size, xs, vectors, tables, dots); break;
        case 3: QmvRow<kBits, 3>(row_data, row_bytes, readable, scales, p.group_size, xs, vectors, tables, dots); break;
        default: QmvRow<kBits, 4>(row_data, row_bytes, readable, scales, p.group_size, xs, vectors, tables, dots); break;
      }
      for (int64_t r = 0; r < rows; ++r)
        p.y[(i0 + r) * p.n + row] = dots[r] + PaddedDot(biases, x_sums + (i0 + r) * groups_padded, groups) + extra;
    }
  });
}

#endif  // HWY_TARGET != HWY_SCALAR

// Natural-order unpacking for the GEMM's tile: lane l of a vector starting at element k0 takes
// its bits from one or two words of the L words loaded at word k0 * bits / 32, with a shift
// that repeats every 32 elements (the bit stream realigns to a word every 32 elements).
template <int kBits>
struct TileTables {
  static constexpr int kPatterns = 32;  // at most; a vector starts at a multiple of the lane count
  static constexpr int kMaxLanes = HWY_MAX_BYTES / 4;
  alignas(64) int32_t low_word[kPatterns][kMaxLanes];
  alignas(64) int32_t high_word[kPatterns][kMaxLanes];
  alignas(64) uint32_t shift[kPatterns][kMaxLanes];
  alignas(64) uint32_t high_shift[kPatterns][kMaxLanes];  // 31 - shift, see DequantRow
  int64_t patterns;

  explicit TileTables(int64_t lanes) {
    patterns = std::max<int64_t>(1, 32 / lanes);
    for (int64_t pattern = 0; pattern < patterns; ++pattern) {
      const int64_t first_bit = pattern * lanes * kBits % 32;
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t bit = first_bit + l * kBits;
        const int64_t word = bit / 32, s = bit % 32;
        low_word[pattern][l] = static_cast<int32_t>(word);
        high_word[pattern][l] = static_cast<int32_t>(s + kBits > 32 ? word + 1 : word);
        shift[pattern][l] = static_cast<uint32_t>(s);
        high_shift[pattern][l] = static_cast<uint32_t>(31 - s);
      }
    }
  }
};

// dst[0 : kc] = dequant(W[row, k0 : k0 + kc]), zeros up to the next multiple of the lanes.
// k0 is a multiple of the group size and of the lane count.
template <int kBits>
HWY_INLINE void DequantRow(const QmmProblem& p, const TileTables<kBits>& t, int64_t row, int64_t k0, int64_t kc,
                           float* HWY_RESTRICT dst) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::RebindToUnsigned<DF> du;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t words_per_row = p.k * kBits / 32;
  const uint32_t* words = p.packed + row * words_per_row;
  const int64_t readable_words = (p.n - row) * words_per_row;
  const int64_t groups = p.k / p.group_size;
  const int64_t first_group = k0 / p.group_size;
  const int64_t block_groups = (kc + p.group_size - 1) / p.group_size;

  float* scales = thread_scratch(ScratchSlot::TileScales, static_cast<size_t>(2 * (block_groups + lanes)));
  float* biases = scales + block_groups + lanes;
  const size_t scale_size = dtype_size(p.scale_dtype);
  WidenToF32(static_cast<const uint8_t*>(p.scales) + (row * groups + first_group) * scale_size, p.scale_dtype,
             block_groups, scales);
  WidenToF32(static_cast<const uint8_t*>(p.biases) + (row * groups + first_group) * scale_size, p.scale_dtype,
             block_groups, biases);
  std::fill(scales + block_groups, scales + block_groups + lanes, 0.0f);
  std::fill(biases + block_groups, biases + block_groups + lanes, 0.0f);

  alignas(64) int32_t group_of_lane[HWY_MAX_BYTES / 4];
  for (int64_t l = 0; l < lanes; ++l) group_of_lane[l] = static_cast<int32_t>(l / p.group_size);
  const auto group_index = hn::SetTableIndices(df, group_of_lane);
  const auto mask = hn::Set(du, (1u << kBits) - 1);

  const int64_t kc_padded = RoundUp(kc, lanes);
#if HWY_TARGET == HWY_SCALAR
  // One lane cannot hold the two words an element may straddle: read the bits directly.
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t bit = (k0 + kk) * kBits;
    uint64_t pair = words[bit / 32];
    if (bit % 32 + kBits > 32) pair |= uint64_t{words[bit / 32 + 1]} << 32;
    const auto q = static_cast<float>((pair >> (bit % 32)) & ((1u << kBits) - 1));
    dst[kk] = q * scales[kk / p.group_size] + biases[kk / p.group_size];
  }
  (void)t;
  (void)readable_words;
  return;
#endif
  for (int64_t kk = 0; kk < kc_padded; kk += lanes) {
    const int64_t col = k0 + kk;
    const int64_t pattern = (col / lanes) % t.patterns;
    const int64_t first_word = col * kBits / 32;
    alignas(64) uint32_t copy[HWY_MAX_BYTES / 4];
    const uint32_t* src = words + first_word;
    if (first_word + lanes > readable_words) {
      std::fill(copy, copy + lanes, 0u);
      std::memcpy(copy, src, static_cast<size_t>(std::max<int64_t>(0, words_per_row - first_word)) * 4);
      src = copy;
    }
    const auto v = hn::LoadU(du, src);
    const auto low = hn::TableLookupLanes(v, hn::SetTableIndices(du, t.low_word[pattern]));
    const auto high = hn::TableLookupLanes(v, hn::SetTableIndices(du, t.high_word[pattern]));
    // high << (32 - s) as two legal shifts: s = 0 (nothing from the next word) gives 0.
    const auto q = hn::And(hn::Or(hn::Shr(low, hn::LoadU(du, t.shift[pattern])),
                                  hn::Shl(hn::ShiftLeft<1>(high), hn::LoadU(du, t.high_shift[pattern]))),
                           mask);
    const int64_t g = kk / p.group_size;
    const auto scale = lanes <= p.group_size ? hn::Set(df, scales[g])
                                             : hn::TableLookupLanes(hn::LoadU(df, scales + g), group_index);
    const auto bias = lanes <= p.group_size ? hn::Set(df, biases[g])
                                            : hn::TableLookupLanes(hn::LoadU(df, biases + g), group_index);
    auto w = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, q)), scale, bias);
    if (kk + lanes > kc) w = hn::IfThenElseZero(hn::FirstN(df, static_cast<size_t>(kc - kk)), w);
    hn::StoreU(w, df, dst + kk);
  }
}

template <int kBits>
void Qmm(const QmmProblem& p) {
#if HWY_TARGET != HWY_SCALAR
  if (p.path == QmmPath::Int8) return QmvInt8<kBits>(p);
  if (p.m < kGemmMinRows) return Qmv<kBits>(p);
#endif
  const TileTables<kBits> tables(static_cast<int64_t>(hn::Lanes(DF())));
  BlockedGemm(p.x, p.m, p.n, p.k, p.bias, p.y, [&](int64_t row, int64_t k0, int64_t kc, float* dst) {
    DequantRow<kBits>(p, tables, row, k0, kc, dst);
    return static_cast<const float*>(dst);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#endif  // AFQ_CPU_QMM_INL_H_
