// The int8-activation decode GEMV (QmvInt8): x is quantized to int8 per block of 32 along K,
// and each group's dot product with the unsigned q's is an integer dot product of bytes
// (AVX-512 VNNI vpdpbusd; maddubs + madd on AVX2 / AVX-512; plain Highway ops elsewhere).
//
// Two int8 digits per element of x. Per block b: dx_b = max|x| / 127 and r = x / dx_b; the high
// digit is round(r) (in [-127, 127]), the low one round((r - high) * 128) (in [-64, 64]), so
//   x = dx_b * (high + low / 128) + e,  |e| <= dx_b / 256.
// One digit alone (ggml's q8_0) leaves a relative error near 5.3e-3 on Gaussian x against
// zero-mean weights, above issue 3's 5e-3; the second digit brings it near 4e-5 for one more
// byte dot product per weight byte (integer work that decode, bound by memory, has to spare).
// The integer sum per 32-bit lane is (q . high) * 128 + q . low (at most 4 * 255 * 127 * 129,
// which int32 holds), and dx_b / 128 turns it into float.
//
// The bias term. Per group g of a row of W (w = s * q + b), with S_g = sum x (exact, float),
// Xhat_g = sum of the quantized x, and c = 2^(bits-1) (the middle of q's range):
//   sum_g w . x = s * sum_g (q - c) . x + (b + s * c) * S_g
//              ~ s * sum_{b in g} dx_b * (q . xq)_b  - s * c * Xhat_g  + (b + s * c) * S_g,
// so the error is s * sum (q - c) * e: centred q's keep it near the size of w itself, however
// large b is. The main loop computes the integer dots; the other terms are short dot products:
//   y = sum_lanes s * dx * (q . xq)  +  b . S  +  c * s . (S - Xhat).
// Where the integer dot already takes q - c (8 bits without VNNI: see DotCenteredU8I8) the last
// term is c * s . S.
//
// Layout. One step of the loop loads one vector of packed bytes and unpacks it to kChunks byte
// vectors of q. x is quantized into the same order (chunk c, byte i of a step holds the element
// ElementOf(c, i)), so the weights need no reordering: 4 bits split a byte into its two nibbles,
// 2 bits into four crumbs, 8 bits are bytes already, and 3, 5, 6 bits move each 8 elements'
// bytes into a 64-bit lane and spread them one per byte (natural order). Every 32-bit lane of
// the dot products then sums the elements of one block of x (a lane covers 4 * kChunks
// elements; a block 32), so one factor per lane (s of its group times dx of its block) turns
// the integer sums into float.

#if defined(AFQ_CPU_QMV_INT8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef AFQ_CPU_QMV_INT8_INL_H_
#undef AFQ_CPU_QMV_INT8_INL_H_
#else
#define AFQ_CPU_QMV_INT8_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "afq/cpu.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "src/cpu/gemm-inl.h"
#include "src/cpu/qmm.h"
#include "src/cpu/scratch.h"

HWY_BEFORE_NAMESPACE();
namespace afq::cpu {
namespace HWY_NAMESPACE {

#if HWY_TARGET != HWY_SCALAR

// Where the int8 path is the default for decode (measured: BENCHMARKS.md). Elsewhere the
// plain-Highway byte dot product costs more than it saves; AFQ_CPU_QMM=int8 still runs it.
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
inline constexpr bool kInt8Preferred = true;
#else
inline constexpr bool kInt8Preferred = false;
#endif

// x is quantized per block of this many elements (one dx each); group sizes are multiples.
inline constexpr int64_t kXBlock = 32;

using DI32 = hn::RebindToSigned<DF>;
using DU32 = hn::RebindToUnsigned<DF>;
using DU8 = hn::Repartition<uint8_t, DF>;
using DI8 = hn::Repartition<int8_t, DF>;
using DU64 = hn::Repartition<uint64_t, DF>;

template <int kBits>
struct Int8Layout {
  static constexpr int kChunks = kBits == 2 ? 4 : kBits == 4 ? 2 : 1;  // byte vectors per step
  // Whether the integer dot takes q - c itself: maddubs would saturate on 8-bit q's.
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
  static constexpr bool kCentered = kBits == 8;
#else
  static constexpr bool kCentered = false;
#endif
  // Element (within the step) of chunk c's byte i.
  static int64_t ElementOf(int c, int64_t i) { return i * kChunks + c; }
};

// acc[j] += sum_{t<4} a[4j+t] * b[4j+t], a unsigned and b signed bytes. For bits <= 7 every
// q < 128, so maddubs's pairwise int16 sums (at most 2 * 127 * 127) cannot saturate.
HWY_INLINE hn::Vec<DI32> DotU8I8(hn::Vec<DI32> acc, hn::Vec<DU8> a, hn::Vec<DI8> b) {
#if HWY_TARGET == HWY_AVX3_DL
  // The intrinsic needs avx512vnni in the function's target, which Highway's AVX3_DL lacks;
  // the CPU has it (Highway picks AVX3_DL only with VNNI), so the instruction is spelled out.
  __m512i r = acc.raw;
  asm("vpdpbusd %[b], %[a], %[r]" : [r] "+v"(r) : [a] "v"(a.raw), [b] "v"(b.raw));
  return hn::Vec<DI32>{r};
#elif HWY_TARGET == HWY_AVX3
  const __m512i pairs = _mm512_maddubs_epi16(a.raw, b.raw);
  return hn::Add(acc, hn::Vec<DI32>{_mm512_madd_epi16(pairs, _mm512_set1_epi16(1))});
#elif HWY_TARGET == HWY_AVX2
  const __m256i pairs = _mm256_maddubs_epi16(a.raw, b.raw);
  return hn::Add(acc, hn::Vec<DI32>{_mm256_madd_epi16(pairs, _mm256_set1_epi16(1))});
#else
  // Byte t of every 32-bit lane, zero- (a) or sign-extended (b), multiplied in int32.
  const DI32 di;
  const auto a32 = hn::BitCast(di, a), b32 = hn::BitCast(di, b);
  const auto ff = hn::Set(di, 0xFF);
  acc = hn::Add(acc, hn::Mul(hn::And(a32, ff), hn::ShiftRight<24>(hn::ShiftLeft<24>(b32))));
  acc = hn::Add(acc, hn::Mul(hn::And(hn::ShiftRight<8>(a32), ff), hn::ShiftRight<24>(hn::ShiftLeft<16>(b32))));
  acc = hn::Add(acc, hn::Mul(hn::And(hn::ShiftRight<16>(a32), ff), hn::ShiftRight<24>(hn::ShiftLeft<8>(b32))));
  return hn::Add(acc, hn::Mul(hn::BitCast(di, hn::ShiftRight<24>(hn::BitCast(DU32(), a32))),
                              hn::ShiftRight<24>(b32)));
#endif
}

// The same for 8-bit q's where Int8Layout::kCentered: acc += (q - 128) . b, as maddubs of
// |q - 128| (at most 128) with b negated where q - 128 < 0.
HWY_INLINE hn::Vec<DI32> DotCenteredU8I8(hn::Vec<DI32> acc, hn::Vec<DU8> q, hn::Vec<DI8> b) {
#if HWY_TARGET == HWY_AVX3
  const __m512i centered = _mm512_xor_si512(q.raw, _mm512_set1_epi8(static_cast<char>(0x80)));
  const __m512i signed_b = _mm512_mask_sub_epi8(b.raw, _mm512_movepi8_mask(centered), _mm512_setzero_si512(), b.raw);
  const __m512i pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(centered), signed_b);
  return hn::Add(acc, hn::Vec<DI32>{_mm512_madd_epi16(pairs, _mm512_set1_epi16(1))});
#elif HWY_TARGET == HWY_AVX2
  const __m256i centered = _mm256_xor_si256(q.raw, _mm256_set1_epi8(static_cast<char>(0x80)));
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(centered), _mm256_sign_epi8(b.raw, centered));
  return hn::Add(acc, hn::Vec<DI32>{_mm256_madd_epi16(pairs, _mm256_set1_epi16(1))});
#else
  return DotU8I8(acc, q, b);  // not used: kCentered is false here
#endif
}

template <int kBits>
HWY_INLINE hn::Vec<DI32> Dot(hn::Vec<DI32> acc, hn::Vec<DU8> q, hn::Vec<DI8> x) {
  return Int8Layout<kBits>::kCentered ? DotCenteredU8I8(acc, q, x) : DotU8I8(acc, q, x);
}

// Per-lane constants of one call.
template <int kBits>
struct Int8Tables {
  static constexpr int kMaxLanes32 = HWY_MAX_BYTES / 4;
  alignas(64) int32_t scale_lane[kMaxLanes32];        // 32-bit lane -> group within the step's groups
  alignas(64) int32_t word_of_block[kMaxLanes32];     // 3/5/6 bits: lane -> source word (see Unpack)
  alignas(64) uint8_t byte_of_lane[HWY_MAX_BYTES];    // 3/5/6 bits: byte shuffle within 16-byte blocks
  alignas(64) uint8_t vbmi_bytes[64];                 // 3/5/6 bits, AVX3_DL: byte permutation
  alignas(64) uint8_t vbmi_shifts[64];                // 3/5/6 bits, AVX3_DL: bit offsets

  Int8Tables(int64_t lanes32, int64_t group_size) {
    constexpr int epl = 4 * Int8Layout<kBits>::kChunks;  // elements per 32-bit lane
    for (int64_t l = 0; l < lanes32; ++l) scale_lane[l] = static_cast<int32_t>(l * epl / group_size);
    // 64-bit lane i needs bytes [i * kBits, (i + 1) * kBits) of the step; a 16-byte block (two
    // such lanes, 2 * kBits <= 12 bytes) gets the 4 words from the one holding its first byte.
    for (int64_t l = 0; l < lanes32; ++l) {
      const int64_t block = l / 4, first_word = block * 2 * kBits / 4;
      word_of_block[l] = static_cast<int32_t>(std::min<int64_t>(first_word + l % 4, lanes32 - 1));
    }
    for (int64_t b = 0; b < 4 * lanes32; ++b) {
      const int64_t block = b / 16, in_block = b % 16, lane64 = block * 2 + in_block / 8, u = in_block % 8;
      const int64_t rel = lane64 * kBits - block * 2 * kBits / 4 * 4;
      byte_of_lane[b] = u < kBits ? static_cast<uint8_t>(rel + u) : uint8_t{0x80};  // 0x80: zero
    }
    for (int b = 0; b < 64; ++b) {
      vbmi_bytes[b] = static_cast<uint8_t>(std::min(63, (b / 8) * kBits + b % 8));
      vbmi_shifts[b] = static_cast<uint8_t>((b % 8) * kBits);
    }
  }
};

// Unpacks one step of packed bytes (src, readable for a whole vector) into kChunks vectors of q.
template <int kBits>
HWY_INLINE void Unpack(const uint8_t* src, const Int8Tables<kBits>& t, hn::Vec<DU8>* q) {
  const DU8 du8;
  const hn::Repartition<uint16_t, DF> du16;
  const auto raw = hn::LoadU(du8, src);
  if constexpr (kBits == 8) {
    q[0] = raw;
  } else if constexpr (kBits == 4) {
    const auto low = hn::Set(du8, 0x0F);
    q[0] = hn::And(raw, low);
    q[1] = hn::And(hn::BitCast(du8, hn::ShiftRight<4>(hn::BitCast(du16, raw))), low);
  } else if constexpr (kBits == 2) {
    const auto low = hn::Set(du8, 0x03);
    const auto wide = hn::BitCast(du16, raw);
    q[0] = hn::And(raw, low);
    q[1] = hn::And(hn::BitCast(du8, hn::ShiftRight<2>(wide)), low);
    q[2] = hn::And(hn::BitCast(du8, hn::ShiftRight<4>(wide)), low);
    q[3] = hn::And(hn::BitCast(du8, hn::ShiftRight<6>(wide)), low);
  } else {
#if HWY_TARGET == HWY_AVX3_DL
    // vpermb puts each 8 elements' bytes in a 64-bit lane, vpmultishiftqb takes 8 bits at each
    // element's offset; the mask drops the next element's bits.
    const __m512i lanes = _mm512_permutexvar_epi8(_mm512_load_si512(t.vbmi_bytes), raw.raw);
    const __m512i shifted = _mm512_multishift_epi64_epi8(_mm512_load_si512(t.vbmi_shifts), lanes);
    q[0] = hn::And(hn::Vec<DU8>{shifted}, hn::Set(du8, static_cast<uint8_t>((1 << kBits) - 1)));
#else
    const DU32 du32;
    const DU64 du64;
    auto words = hn::BitCast(du32, raw);
    if (hn::Lanes(du32) > 4) words = hn::TableLookupLanes(words, hn::SetTableIndices(du32, t.word_of_block));
    auto v = hn::BitCast(du64, hn::TableLookupBytesOr0(hn::BitCast(du8, words), hn::LoadU(du8, t.byte_of_lane)));
    // Spread 8 * kBits bits over 8 bytes by halving: the upper half of each unit (64, 32, 16
    // bits wide) moves up to the middle of the unit, the lower half stays.
    constexpr uint64_t kQ = (uint64_t{1} << kBits) - 1;
    constexpr uint64_t kLow1 = (uint64_t{1} << (4 * kBits)) - 1;                              // 4 elements
    constexpr uint64_t kLow2 = ((uint64_t{1} << (2 * kBits)) - 1) * 0x0000000100000001ull;  // 2 per 32 bits
    constexpr uint64_t kLow3 = kQ * 0x0001000100010001ull;                                   // 1 per 16 bits
    v = hn::Or(hn::And(v, hn::Set(du64, kLow1)), hn::And(hn::ShiftLeft<32 - 4 * kBits>(v), hn::Set(du64, kLow1 << 32)));
    v = hn::Or(hn::And(v, hn::Set(du64, kLow2)), hn::And(hn::ShiftLeft<16 - 2 * kBits>(v), hn::Set(du64, kLow2 << 16)));
    v = hn::Or(hn::And(v, hn::Set(du64, kLow3)), hn::And(hn::ShiftLeft<8 - kBits>(v), hn::Set(du64, kLow3 << 8)));
    q[0] = hn::BitCast(du8, v);
#endif
  }
}

// x rows laid out for QmvInt8 (per row of x; `steps` steps of `step_elements`):
struct Int8X {
  int8_t* xq;         // [steps][2 digits][kChunks][bytes per vector]: x's digits in unpack order, 0 past K
  float* lane_dx;     // [steps * lanes32]: dx / 128 of the block each 32-bit lane sums
  float* sums;        // [groups_padded]: S_g, exact
  float* corrections; // [groups_padded]: S_g - Xhat_g (S_g where the dot is centred), see the top
};

// Quantizes one row of x (length k) into `out`; `digits` is scratch of 2 * steps * step_elements bytes.
template <int kBits>
void QuantizeXRow(const float* x, int64_t k, int group_size, int64_t steps, int8_t* digits, Int8X out) {
  using L = Int8Layout<kBits>;
  const DF df;
  const DI32 di;
  const hn::Rebind<int8_t, DI32> di8;
  const int64_t lanes32 = static_cast<int64_t>(hn::Lanes(df));
  const int64_t vector_bytes = 4 * lanes32;
  const int64_t step_elements = L::kChunks * vector_bytes;
  const int64_t padded = steps * step_elements;
  int8_t* high = digits;           // [padded], natural order
  int8_t* low = digits + padded;   // [padded]
  const int64_t blocks = k / kXBlock;
  float* block_dx = out.lane_dx + steps * lanes32;  // scratch after lane_dx: [blocks]
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kXBlock;
    auto amax = hn::Zero(df);
    for (int64_t i = 0; i < kXBlock; i += lanes32) amax = hn::Max(amax, hn::Abs(hn::LoadU(df, xb + i)));
    const float m = hn::GetLane(hn::MaxOfLanes(df, amax));
    const auto inv = hn::Set(df, m > 0.0f ? 127.0f / m : 0.0f);
    auto qsum = hn::Zero(di);
    auto xsum = hn::Zero(df);
    for (int64_t i = 0; i < kXBlock; i += lanes32) {
      const auto v = hn::LoadU(df, xb + i);
      const auto r = hn::Mul(v, inv);
      const auto hi = hn::NearestInt(r);
      const auto lo = hn::NearestInt(hn::Mul(hn::Sub(r, hn::ConvertTo(df, hi)), hn::Set(df, 128.0f)));
      qsum = hn::Add(qsum, hn::Add(hn::ShiftLeft<7>(hi), lo));
      xsum = hn::Add(xsum, v);
      hn::StoreU(hn::DemoteTo(di8, hi), di8, high + b * kXBlock + i);
      hn::StoreU(hn::DemoteTo(di8, lo), di8, low + b * kXBlock + i);
    }
    const float dx = m / (127.0f * 128.0f);
    block_dx[b] = dx;
    const float sum = SumLanes(xsum);
    const float xhat = dx * static_cast<float>(hn::GetLane(hn::SumOfLanes(di, qsum)));
    const int64_t g = b * kXBlock / group_size;
    if (b * kXBlock % group_size == 0) out.sums[g] = out.corrections[g] = 0.0f;
    out.sums[g] += sum;
    out.corrections[g] += L::kCentered ? sum : sum - xhat;
  }
  std::fill(high + k, high + padded, int8_t{0});
  std::fill(low + k, low + padded, int8_t{0});
  for (int64_t s = 0; s < steps; ++s)
    for (int d = 0; d < 2; ++d) {
      const int8_t* src = (d == 0 ? high : low) + s * step_elements;
      int8_t* dst = out.xq + (2 * s + d) * step_elements;
      if constexpr (L::kChunks == 1) {
        std::memcpy(dst, src, static_cast<size_t>(step_elements));
      } else {
        for (int c = 0; c < L::kChunks; ++c)
          for (int64_t i = 0; i < vector_bytes; ++i) dst[c * vector_bytes + i] = src[L::ElementOf(c, i)];
      }
    }
  constexpr int64_t epl = 4 * L::kChunks;
  for (int64_t s = 0; s < steps; ++s)
    for (int64_t l = 0; l < lanes32; ++l) {
      const int64_t first = s * step_elements + l * epl;
      out.lane_dx[s * lanes32 + l] = first < k ? block_dx[first / kXBlock] : 0.0f;
    }
}

// One row of W as the int8 GEMV walks it: the steps' geometry, where a step's packed bytes are
// read from, and its scales.
template <int kBits>
struct Int8RowSteps {
  using L = Int8Layout<kBits>;
  DF df;
  int64_t lanes32, vector_bytes, step_elements, step_bytes, group_size, groups_per_step, in_place;
  bool one_group_per_step;
  decltype(hn::SetTableIndices(DF(), static_cast<const int32_t*>(nullptr))) scale_index;

  Int8RowSteps(int64_t row_bytes_readable, int64_t steps, int64_t group_size_, const Int8Tables<kBits>& t)
      : lanes32(static_cast<int64_t>(hn::Lanes(df))),
        vector_bytes(4 * lanes32),
        step_elements(L::kChunks * vector_bytes),
        step_bytes(step_elements * kBits / 8),
        group_size(group_size_),
        groups_per_step(step_elements <= group_size_ ? 0 : step_elements / group_size_),
        // Each step loads a whole vector: in place while that stays readable, else from a copy.
        in_place(row_bytes_readable >= vector_bytes
                     ? std::min(steps, (row_bytes_readable - vector_bytes) / step_bytes + 1)
                     : 0),
        one_group_per_step(step_elements <= group_size_),
        scale_index(hn::SetTableIndices(df, t.scale_lane)) {}

  // Step s's packed bytes of `row` (row_bytes long), from `copy` past what is readable.
  const uint8_t* Source(const uint8_t* row, int64_t row_bytes, int64_t s, uint8_t* copy) const {
    const uint8_t* src = row + s * step_bytes;
    if (HWY_LIKELY(s < in_place)) return src;
    std::memset(copy, 0, HWY_MAX_BYTES);
    const int64_t left = std::max<int64_t>(0, std::min(vector_bytes, row_bytes - s * step_bytes));
    std::memcpy(copy, src, static_cast<size_t>(left));
    return copy;
  }

  // The scale of the group each 32-bit lane of step s sums.
  hn::Vec<DF> Scale(const float* row_scales, int64_t s) const {
    if (one_group_per_step) return hn::Set(df, row_scales[s * step_elements / group_size]);
    return hn::TableLookupLanes(hn::LoadU(df, row_scales + s * groups_per_step), scale_index);
  }
};

// dots[r] = sum over lanes of s * dx * (q . xq) for kRows rows of x and one row of W.
template <int kBits, int kRows>
HWY_INLINE void QmvInt8Row(const uint8_t* row, int64_t row_bytes, int64_t readable, const float* row_scales,
                           int64_t group_size, const Int8X* xs, int64_t steps, const Int8Tables<kBits>& t,
                           float* dots) {
  using L = Int8Layout<kBits>;
  const DF df;
  const DI32 di;
  const DI8 di8;
  const Int8RowSteps<kBits> w(readable, steps, group_size, t);
  const int64_t lanes32 = w.lanes32, vector_bytes = w.vector_bytes, step_elements = w.step_elements;

  hn::Vec<DF> acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = hn::Zero(df);
  alignas(64) uint8_t copy[HWY_MAX_BYTES];
  for (int64_t s = 0; s < steps; ++s) {
    const uint8_t* src = w.Source(row, row_bytes, s, copy);
    // As in the float GEMV: more misses in flight than the hardware prefetcher keeps.
    hwy::Prefetch(src + kPrefetchBytes);
    hn::Vec<DU8> q[L::kChunks];
    Unpack<kBits>(src, t, q);
    const auto scale = w.Scale(row_scales, s);
    for (int r = 0; r < kRows; ++r) {
      const int8_t* high = xs[r].xq + 2 * s * step_elements;
      const int8_t* low = high + step_elements;
      auto dot = hn::Zero(di);
      for (int c = 0; c < L::kChunks; ++c) dot = Dot<kBits>(dot, q[c], hn::LoadU(di8, high + c * vector_bytes));
      dot = hn::ShiftLeft<7>(dot);
      for (int c = 0; c < L::kChunks; ++c) dot = Dot<kBits>(dot, q[c], hn::LoadU(di8, low + c * vector_bytes));
      const auto factor = hn::Mul(scale, hn::LoadU(df, xs[r].lane_dx + s * lanes32));
      acc[r] = hn::MulAdd(hn::ConvertTo(df, dot), factor, acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) dots[r] = SumLanes(acc[r]);
}

// dots[i] = sum over lanes of s * dx * (q . xq) for two rows of W and one row of x: each step's
// x digits and factors, loaded once, serve both rows (one x row alone is bound by its loads, not
// its arithmetic). `readable` counts from the second row, the only one that can end W.
template <int kBits>
HWY_INLINE void QmvInt8RowPair(const uint8_t* const* rows, int64_t row_bytes, int64_t readable,
                               const float* const* row_scales, int64_t group_size, const Int8X& x, int64_t steps,
                               const Int8Tables<kBits>& t, float* dots) {
  using L = Int8Layout<kBits>;
  const DF df;
  const DI32 di;
  const DI8 di8;
  // `readable` is the second row's: only it can run past the end of W.
  const Int8RowSteps<kBits> w(readable, steps, group_size, t);
  const int64_t lanes32 = w.lanes32, vector_bytes = w.vector_bytes, step_elements = w.step_elements;

  hn::Vec<DF> acc[2] = {hn::Zero(df), hn::Zero(df)};
  alignas(64) uint8_t copy[HWY_MAX_BYTES];
  for (int64_t s = 0; s < steps; ++s) {
    const int8_t* high = x.xq + 2 * s * step_elements;
    const int8_t* low = high + step_elements;
    hn::Vec<DI8> xh[L::kChunks], xl[L::kChunks];
    for (int c = 0; c < L::kChunks; ++c) {
      xh[c] = hn::LoadU(di8, high + c * vector_bytes);
      xl[c] = hn::LoadU(di8, low + c * vector_bytes);
    }
    const auto dx = hn::LoadU(df, x.lane_dx + s * lanes32);
    for (int r = 0; r < 2; ++r) {
      const uint8_t* src = r == 1 ? w.Source(rows[1], row_bytes, s, copy) : rows[0] + s * w.step_bytes;
      hwy::Prefetch(src + kPrefetchBytes);
      hn::Vec<DU8> q[L::kChunks];
      Unpack<kBits>(src, t, q);
      const auto scale = w.Scale(row_scales[r], s);
      auto dot = hn::Zero(di);
      for (int c = 0; c < L::kChunks; ++c) dot = Dot<kBits>(dot, q[c], xh[c]);
      dot = hn::ShiftLeft<7>(dot);
      for (int c = 0; c < L::kChunks; ++c) dot = Dot<kBits>(dot, q[c], xl[c]);
      acc[r] = hn::MulAdd(hn::ConvertTo(df, dot), hn::Mul(scale, dx), acc[r]);
    }
  }
  dots[0] = SumLanes(acc[0]);
  dots[1] = SumLanes(acc[1]);
}

template <int kBits>
void QmvInt8(const QmmProblem& p) {
  using L = Int8Layout<kBits>;
  const DF df;
  const int64_t lanes32 = static_cast<int64_t>(hn::Lanes(df));
  const int64_t vector_bytes = 4 * lanes32;
  const int64_t step_elements = L::kChunks * vector_bytes;
  const int64_t steps = (p.k + step_elements - 1) / step_elements;
  const int64_t groups = p.k / p.group_size;
  const int64_t groups_padded = RoundUp(groups, lanes32) + lanes32;  // TableLookupLanes loads a whole vector
  const int64_t row_bytes = p.k * kBits / 8;
  const Int8Tables<kBits> tables(lanes32, p.group_size);
  constexpr float kCenter = static_cast<float>(1 << (kBits - 1));

  // Per row of x: xq, then lane_dx (+ block scratch), sums and corrections, in float units.
  const int64_t xq_floats = 2 * steps * step_elements / 4;
  const int64_t dx_floats = steps * lanes32 + p.k / kXBlock;
  const int64_t row_floats = RoundUp(xq_floats + dx_floats + 2 * groups_padded, 16);
  float* x_all = thread_scratch(ScratchSlot::QuantizedX, static_cast<size_t>(p.m * row_floats));
  auto* digits = reinterpret_cast<int8_t*>(
      thread_scratch(ScratchSlot::NaturalX, static_cast<size_t>(2 * steps * step_elements / 4 + 16)));
  const auto x_row = [&](int64_t i) {
    float* base = x_all + i * row_floats;
    Int8X x;
    x.xq = reinterpret_cast<int8_t*>(base);
    x.lane_dx = base + xq_floats;
    x.sums = x.lane_dx + dx_floats;
    x.corrections = x.sums + groups_padded;
    return x;
  };
  for (int64_t i = 0; i < p.m; ++i) {
    const Int8X x = x_row(i);
    std::fill(x.sums + groups, x.sums + groups_padded, 0.0f);
    std::fill(x.corrections + groups, x.corrections + groups_padded, 0.0f);
    QuantizeXRow<kBits>(p.x + i * p.k, p.k, p.group_size, steps, digits, x);
  }

  if (p.m == 1) {  // decode: rows of W in pairs against the one row of x
    const Int8X x = x_row(0);
    ForEachWeightRowPair(
        p, row_bytes, groups, groups_padded,
        [&](const int64_t* rows, const uint8_t* const* data, int64_t readable, const float* const* scales,
            const float* const* biases, const float* extra, int count) {
          float dots[2];
          if (count == 2) {
            QmvInt8RowPair<kBits>(data, row_bytes, readable, scales, p.group_size, x, steps, tables, dots);
          } else {
            QmvInt8Row<kBits, 1>(data[0], row_bytes, readable, scales[0], p.group_size, &x, steps, tables, dots);
          }
          for (int i = 0; i < count; ++i)
            p.y[rows[i]] = dots[i] + PaddedDot(biases[i], x.sums, groups) +
                           kCenter * PaddedDot(scales[i], x.corrections, groups) + extra[i];
        });
    return;
  }
  ForEachWeightRow(p, row_bytes, groups, groups_padded,
                   [&](int64_t row, const uint8_t* row_data, int64_t readable, const float* scales,
                       const float* biases, float extra) {
    for (int64_t i0 = 0; i0 < p.m; i0 += 4) {
      const int64_t rows = std::min<int64_t>(4, p.m - i0);
      Int8X x[4];
      for (int64_t r = 0; r < rows; ++r) x[r] = x_row(i0 + r);
      float dots[4];
      switch (rows) {
        case 1: QmvInt8Row<kBits, 1>(row_data, row_bytes, readable, scales, p.group_size, x, steps, tables, dots); break;
        case 2: QmvInt8Row<kBits, 2>(row_data, row_bytes, readable, scales, p.group_size, x, steps, tables, dots); break;
        case 3: QmvInt8Row<kBits, 3>(row_data, row_bytes, readable, scales, p.group_size, x, steps, tables, dots); break;
        default: QmvInt8Row<kBits, 4>(row_data, row_bytes, readable, scales, p.group_size, x, steps, tables, dots); break;
      }
      for (int64_t r = 0; r < rows; ++r)
        p.y[(i0 + r) * p.n + row] = dots[r] + PaddedDot(biases, x[r].sums, groups) +
                                    kCenter * PaddedDot(scales, x[r].corrections, groups) + extra;
    }
  });
}

#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace HWY_NAMESPACE
}  // namespace afq::cpu
HWY_AFTER_NAMESPACE();

#endif  // AFQ_CPU_QMV_INT8_INL_H_
