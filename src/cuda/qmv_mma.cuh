// GEMV/skinny GEMM on the tensor cores for 1 <= M <= 64 (sm_80 and up): W is dequantized in
// registers straight into mma.sync m16n8k16 A fragments, with no shared-memory round trip for W.
// Included by one qmv_mma_b<bits>.cu per bit width.
//
// Roles: the 16 rows of an A fragment are 16 rows of W (16 outputs n), the 8 columns of the B
// fragment are 8 rows of x (M padded to 8 with zeros), accumulators are float32. More than 8
// rows of x: the warp reuses its dequantized A fragments for up to 8 blocks of 8 rows.
//
// Thread -> data: lane (g = lane / 4, t = lane % 4) owns rows g and g + 8 of the warp's 16-row
// tile, as the A fragment demands. In each K step lane t of a quad reads one contiguous "chunk"
// of each row (kPacks packs of 32 q's) with 16- or 8-byte __ldg loads; the 4 lanes of a quad
// read 4 consecutive chunks, so a row's step is one coalesced piece of the checkpoint's layout.
//
// The k permutation: an mma consumes k = 2t, 2t + 1 (register 0) and 2t + 8, 2t + 9 (register 2)
// from lane t. Since a dot product does not change when W and x are permuted alike, those four
// k's are whatever four q's of lane t's own chunk are cheapest to pair: two q's whose bits lie
// 16 (+-d) apart in one 32-bit window become a bf16x2/f16x2 with a single LOP3, (window & mask)
// | magic, where magic = 1024 (f16) or 128 (bf16) puts q * 2^d in the mantissa (exact). x is
// loaded in its natural order and paired identically with one PRMT per register.
//
// Scale and bias: a pack of 32 q's lies in one group, but the 4 lanes of an mma hold different
// packs (different groups), so s and b are applied before the mma, per pair in half precision:
//   q = fma2(r, 2^-d, -magic * 2^-d)   (exact), w = fma2(q, s, b)   (one rounding, like the
// dequantize + cuBLAS path, which also rounds w to x's dtype). The accumulation is float32.
// bf16 cannot hold an 8-bit q beside a magic number, so bf16 x 8 bits goes through float32.
#pragma once

#include <algorithm>
#include <type_traits>
#include <utility>

#include "afq/error.h"
#include "src/cuda/dequant.cuh"
#include "src/cuda/ptx.cuh"
#include "src/cuda/qmm.h"
#include "src/cuda/static_for.cuh"
#include "src/cuda/stream_scratch.h"

namespace afq::cuda {

// Per bit width: a lane's chunk of one row and how it is loaded.
template <int Bits>
struct QmvMmaShape {
  static constexpr int kPacks = Bits == 3 ? 4 : (Bits == 2 || Bits == 5 || Bits == 6) ? 2 : 1;  // packs of 32 q's
  static constexpr int kWords = kPacks * Bits;                          // packed words of one row per chunk
  static constexpr int kVecBytes = (kWords * 4) % 16 == 0 ? 16 : 8;     // 5 bits: 40-byte chunks, 8-byte loads
  static constexpr int kVecs = kWords * 4 / kVecBytes;
  static constexpr int kChunkElems = kPacks * 32;
  static constexpr int kUnroll = (Bits == 2 || Bits == 4) ? 2 : 1;      // chunks per lane per step
  static constexpr int kStepElems = 4 * kUnroll * kChunkElems;          // K covered by a quad per step
};

inline constexpr int kQmvMmaMaxWarps = 8;

// Blocks of 8 warps per multiprocessor that __launch_bounds__ asks registers for: two (at most
// 128 registers) for one block of x rows, so 16 warps keep loads in flight; 3 bits would spill.
template <int Bits, int XBlocks>
constexpr int qmv_mma_min_blocks() {
  return XBlocks == 1 && Bits != 3 ? 2 : 1;
}

// ---- Pairing plan: which two q's of a pack share a 32-bit A register, and how they get there. ----

enum QPairKind : int {
  kOneWindow = 0,   // (window(base) & mask) | magic, then the exact fixup fma2
  kTwoWindows = 1,  // q_a and q_b from two windows (bf16, 5 or 6 bits), then the fixup
  kFloat32 = 2,     // float32 dequant and a cvt to bf16x2 (bf16 and 8 bits)
};

struct QPair {
  int a = 0, b = 0;        // elements (0..31) of the pack: low and high half of the register
  int kind = kOneWindow;
  int base = 0;            // kOneWindow: first bit of the window, relative to the pack
  int da = 0, db = 0;      // kOneWindow: q_a sits at bit da, q_b at bit 16 + db of the window
};

struct QPairPlan {
  QPair pairs[16];
};

// Pairs (i, i + offset) for blocks of 2 * offset consecutive elements; windows are reused by
// consecutive pairs where the exponent room (mantissa bits - Bits) allows, saving shifts.
template <int Bits, bool Bf16>
constexpr QPairPlan make_pair_plan() {
  QPairPlan plan{};
  const int room = (Bf16 ? 7 : 10) - Bits;  // largest d with q * 2^d still exact beside the magic
  int offsets[8] = {};
  int blocks = 0;
  bool one_window = true;
  if (Bits == 2) {
    offsets[0] = offsets[1] = 8, blocks = 2;
  } else if (Bits == 3) {
    offsets[0] = offsets[1] = 5, offsets[2] = 6, blocks = 3;
  } else if (Bits == 4 || (Bits == 5 && !Bf16)) {
    for (int i = 0; i < 4; ++i) offsets[i] = 4;
    blocks = 4;
  } else if ((Bits == 6 || Bits == 8) && !Bf16) {
    for (int i = 0; i < 8; ++i) offsets[i] = 2;
    blocks = 8;
  } else {
    one_window = false;
  }
  if (!one_window) {  // natural pairs (2i, 2i + 1): x needs no permutation
    for (int i = 0; i < 16; ++i) {
      plan.pairs[i].a = 2 * i;
      plan.pairs[i].b = 2 * i + 1;
      plan.pairs[i].kind = Bits == 8 ? kFloat32 : kTwoWindows;
    }
    return plan;
  }
  int n = 0, start = 0, prev_base = -1000;
  for (int blk = 0; blk < blocks; ++blk) {
    const int off = offsets[blk];
    for (int i = 0; i < off; ++i) {
      QPair& q = plan.pairs[n++];
      q.a = start + i;
      q.b = start + i + off;
      const int A = q.a * Bits, B = q.b * Bits;
      const int lo = std::max(std::max(A - room, B - 16 - room), B + Bits - 32);
      const int hi = std::min(A, B - 16);
      if (lo > hi) throw "no single-window pairing";  // not a constant expression: compile error
      q.base = (prev_base >= lo && prev_base <= hi) ? prev_base : hi;
      prev_base = q.base;
      q.da = A - q.base;
      q.db = B - 16 - q.base;
    }
    start += 2 * off;
  }
  if (start != 32) throw "pairing does not cover the pack";
  return plan;
}

// ---- Small device helpers. ----

// d = a * b + c on two halves, one rounding (bf16x2 or f16x2 bit patterns).
template <class T>
__device__ __forceinline__ uint32_t fma2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  } else {
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  }
  return d;
}

// 32 bits of a chunk's bit stream starting at bit Pos (may be negative: zeros shift in).
template <int Pos, int N>
__device__ __forceinline__ uint32_t bit_window(const uint32_t (&w)[N]) {
  if constexpr (Pos < 0) {
    return w[0] << (-Pos);
  } else {
    constexpr int word = Pos / 32, shift = Pos % 32;
    if constexpr (shift == 0) return w[word];
    else if constexpr (word + 1 < N) return __funnelshift_r(w[word], w[word + 1], shift);
    else return w[word] >> shift;
  }
}

// Half-precision constants as bit patterns: 2^e in one half.
template <class T>
constexpr uint32_t pow2_bits(int e) {
  return std::is_same_v<T, __nv_bfloat16> ? static_cast<uint32_t>(127 + e) << 7 : static_cast<uint32_t>(15 + e) << 10;
}
template <class T>
constexpr uint32_t magic_bits() {  // 128 (bf16) or 1024 (f16): its mantissa holds q * 2^d exactly
  return pow2_bits<T>(std::is_same_v<T, __nv_bfloat16> ? 7 : 10);
}
template <class T>
constexpr int magic_log2() {
  return std::is_same_v<T, __nv_bfloat16> ? 7 : 10;
}

// One row's pack `Pack` of the chunk `words` -> 16 A registers of w = s * q + b in x's dtype.
template <class T, int Bits, int Pack, int N>
__device__ __forceinline__ void dequant_pack(const uint32_t (&words)[N], float scale, float bias, uint32_t (&out)[16]) {
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kOff = Pack * 32 * Bits;
  constexpr uint32_t kMask = (1u << Bits) - 1u;
  const uint32_t s2 = Pair<T>::from_float2(scale, scale), b2 = Pair<T>::from_float2(bias, bias);
  static_for<16>([&](auto i) {
    constexpr QPair q = make_pair_plan<Bits, kBf16>().pairs[decltype(i)::value];
    constexpr uint32_t kMagic = magic_bits<T>() * 0x10001u;
    if constexpr (q.kind == kFloat32) {
      const float qa = q_to_float(bit_window<kOff + q.a * Bits, N>(words) & kMask);
      const float qb = q_to_float(bit_window<kOff + q.b * Bits, N>(words) & kMask);
      out[i] = Pair<T>::from_float2(fmaf(scale, qa, bias), fmaf(scale, qb, bias));
    } else {
      uint32_t r;
      if constexpr (q.kind == kOneWindow) {
        constexpr uint32_t mask = (kMask << q.da) | (kMask << (16 + q.db));
        r = (bit_window<kOff + q.base, N>(words) & mask) | kMagic;
      } else {
        r = (bit_window<kOff + q.a * Bits, N>(words) & kMask) | kMagic;
        r |= bit_window<kOff + q.b * Bits - 16, N>(words) & (kMask << 16);
      }
      // (magic + q * 2^d) * 2^-d - magic * 2^-d = q, exactly.
      constexpr int m = magic_log2<T>();
      constexpr uint32_t mul = pow2_bits<T>(-q.da) | (pow2_bits<T>(-q.db) << 16);
      constexpr uint32_t add = (0x8000u | pow2_bits<T>(m - q.da)) | ((0x8000u | pow2_bits<T>(m - q.db)) << 16);
      out[i] = fma2<T>(fma2<T>(r, mul, add), s2, b2);
    }
  });
}

// x pairs for the B fragment, in the same pairing as the A registers. xw[j] holds x[2j], x[2j+1].
template <class T, int Bits>
__device__ __forceinline__ void pair_x(const uint32_t (&xw)[16], uint32_t (&out)[16]) {
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  static_for<16>([&](auto i) {
    constexpr QPair q = make_pair_plan<Bits, kBf16>().pairs[decltype(i)::value];
    if constexpr (q.a % 2 == 0 && q.b == q.a + 1) {
      out[i] = xw[q.a / 2];
    } else {
      constexpr uint32_t sel = (q.a % 2 ? 0x32u : 0x10u) | ((q.b % 2 ? 0x76u : 0x54u) << 8);
      out[i] = __byte_perm(xw[q.a / 2], xw[q.b / 2], sel);
    }
  });
}

// ---- The kernel. ----

// grid: (ceil(N / 16) row tiles, K splits); block: up to 8 warps that share the tile and take
// the split's K steps in turn, then add up in shared memory. XBlocks: blocks of 8 rows of x.
template <class T, int Bits, int XBlocks>
__global__ void __launch_bounds__(kQmvMmaMaxWarps * 32, qmv_mma_min_blocks<Bits, XBlocks>()) qmv_mma_kernel(const QmmProblem p) {
  using S = QmvMmaShape<Bits>;
  constexpr int U = S::kUnroll, P = S::kPacks;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t n0 = int64_t{blockIdx.x} * 16;
  const int64_t k = p.k, row_words = k * Bits / 32, groups_per_row = k / p.group_size;
  const int group_shift = __ffs(p.group_size) - 1;
  const int chunks = static_cast<int>(k / S::kChunkElems);  // per row
  const int all_steps = (chunks + 4 * U - 1) / (4 * U);
  const int first_step = static_cast<int>(int64_t{all_steps} * blockIdx.y / gridDim.y);
  const int end_step = static_cast<int>(int64_t{all_steps} * (blockIdx.y + 1) / gridDim.y);
  const int x_blocks = static_cast<int>(min(int64_t{XBlocks}, (p.m + 7) / 8));
  const T* x = static_cast<const T*>(p.x);

  // Rows past N re-read row N - 1 (always valid); their outputs are dropped.
  const int64_t rows[2] = {min(n0 + g, p.n - 1), min(n0 + g + 8, p.n - 1)};

  // One step of this lane: U chunks of both rows, with their scales and biases.
  struct Step {
    uint32_t w[U][2][S::kWords];
    float scale[U][2][P], bias[U][2][P];
  };
  auto chunk_of = [&](int step, int u) { return (step * U + u) * 4 + t; };
  auto load_step = [&](Step& s, int step) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = min(chunk_of(step, u), chunks - 1);  // past the end: re-read, x is zero there
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint32_t* src = p.weight + rows[r] * row_words + int64_t{c} * S::kWords;
#pragma unroll
        for (int v = 0; v < S::kVecs; ++v) {
          if constexpr (S::kVecBytes == 16) {
            const uint4 q4 = __ldg(reinterpret_cast<const uint4*>(src) + v);
            s.w[u][r][4 * v] = q4.x, s.w[u][r][4 * v + 1] = q4.y, s.w[u][r][4 * v + 2] = q4.z,
                          s.w[u][r][4 * v + 3] = q4.w;
          } else {
            const uint2 q2 = __ldg(reinterpret_cast<const uint2*>(src) + v);
            s.w[u][r][2 * v] = q2.x, s.w[u][r][2 * v + 1] = q2.y;
          }
        }
#pragma unroll
        for (int j = 0; j < P; ++j) {
          const int64_t at = rows[r] * groups_per_row + ((int64_t{c} * P + j) * 32 >> group_shift);
          s.scale[u][r][j] = load_as_float(p.scales, at, p.scale_dtype);
          s.bias[u][r][j] = load_as_float(p.biases, at, p.scale_dtype);
        }
      }
    }
  };

  float acc[XBlocks][4];
#pragma unroll
  for (int b = 0; b < XBlocks; ++b)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[b][c] = 0.f;

  // Dequantizes each pack once into 8 A fragments and multiplies them with every block of x.
  auto matmul = [&](const Step& s, int step) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = chunk_of(step, u);
      const bool valid = c < chunks;
      static_for<P>([&](auto j) {
        uint32_t a[2][16];
        dequant_pack<T, Bits, decltype(j)::value>(s.w[u][0], s.scale[u][0][j], s.bias[u][0][j], a[0]);
        dequant_pack<T, Bits, decltype(j)::value>(s.w[u][1], s.scale[u][1][j], s.bias[u][1][j], a[1]);
        const int64_t k0 = int64_t{c} * S::kChunkElems + decltype(j)::value * 32;
#pragma unroll
        for (int xb = 0; xb < XBlocks; ++xb) {
          if (xb >= x_blocks) break;
          const int64_t m = xb * 8 + g;
          uint32_t xw[16];
          if (valid && m < p.m) {
            const uint4* src = reinterpret_cast<const uint4*>(x + m * k + k0);
#pragma unroll
            for (int v = 0; v < 4; ++v) {
              const uint4 x4 = __ldg(src + v);
              xw[4 * v] = x4.x, xw[4 * v + 1] = x4.y, xw[4 * v + 2] = x4.z, xw[4 * v + 3] = x4.w;
            }
          } else {
#pragma unroll
            for (int e = 0; e < 16; ++e) xw[e] = 0u;
          }
          uint32_t b[16];
          pair_x<T, Bits>(xw, b);
#pragma unroll
          for (int sub = 0; sub < 8; ++sub) {
            const uint32_t af[4] = {a[0][2 * sub], a[1][2 * sub], a[0][2 * sub + 1], a[1][2 * sub + 1]};
            const uint32_t bf[2] = {b[2 * sub], b[2 * sub + 1]};
            mma_m16n8k16<T>(acc[xb], af, bf);
          }
        }
      });
    }
  };

  // Main loop, software-pipelined: the next step's loads are in flight during this step's math.
  int step = first_step + warp;
  Step cur;
  if (step < end_step) load_step(cur, step);
  for (; step < end_step; step += warps) {
    Step next;
    if (step + warps < end_step) load_step(next, step + warps);
    matmul(cur, step);
    cur = next;
  }

  // Sum the warps in shared memory; accumulator c of block xb is y[8 xb + 2t + c % 2][n0 + g + 8 (c / 2)].
  __shared__ float partial_sums[kQmvMmaMaxWarps][XBlocks * 4][32];
#pragma unroll
  for (int b = 0; b < XBlocks; ++b)
#pragma unroll
    for (int c = 0; c < 4; ++c) partial_sums[warp][b * 4 + c][lane] = acc[b][c];
  __syncthreads();
  const bool split = gridDim.y > 1;
  for (int i = threadIdx.x; i < x_blocks * 4 * 32; i += blockDim.x) {
    const int xb = i / 128, c = (i / 32) % 4, l = i % 32;
    const int64_t m = xb * 8 + 2 * (l % 4) + c % 2, n = n0 + l / 4 + 8 * (c / 2);
    if (m >= p.m || n >= p.n) continue;
    float v = 0.f;
    for (int w = 0; w < warps; ++w) v += partial_sums[w][xb * 4 + c][l];
    if (split) {
      p.partial[(int64_t{blockIdx.y} * p.m + m) * p.n + n] = v;
    } else {
      if (p.bias) v += load_as_float(p.bias, n, p.bias_dtype);
      static_cast<T*>(p.y)[m * p.n + n] = Pair<T>::from_float(v);
    }
  }
}

// y = sum over splits of the partial sums (+ bias), in x's dtype.
template <class T>
__global__ void qmv_mma_reduce_kernel(const QmmProblem p, int splits) {
  const int64_t count = p.m * p.n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    float v = 0.f;
    for (int s = 0; s < splits; ++s) v += p.partial[s * count + i];
    if (p.bias) v += load_as_float(p.bias, i % p.n, p.bias_dtype);
    static_cast<T*>(p.y)[i] = Pair<T>::from_float(v);
  }
}

template <class T, int Bits, int XBlocks>
void launch_qmv_mma(const QmmProblem& problem) {
  using S = QmvMmaShape<Bits>;
  QmmProblem p = problem;
  const DeviceInfo& device = current_device_info();
  const int64_t tiles = (p.n + 15) / 16;
  const int64_t steps = (p.k / S::kChunkElems + 4 * S::kUnroll - 1) / (4 * S::kUnroll);
  // Split K over blocks when the row tiles alone leave multiprocessors idle (each split keeps
  // at least 4 steps), then give each block up to 8 warps with at least 2 steps each.
  int64_t splits = 1;
  if (tiles < device.multiprocessors)
    splits = std::clamp<int64_t>(std::min<int64_t>((2 * device.multiprocessors + tiles - 1) / tiles, steps / 4), 1, 32);
  const int64_t steps_per_split = (steps + splits - 1) / splits;
  const int warps = static_cast<int>(std::clamp<int64_t>(steps_per_split / 2, 1, kQmvMmaMaxWarps));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(splits));
  if (tiles > 2147483647) throw Error("[affine_qmm_t] problem too large for qmv_mma: " + describe(p));
  if (splits > 1) {
    // Stream-ordered scratch (kept by the pool between calls), safe with concurrent streams.
    const size_t bytes = sizeof(float) * static_cast<size_t>(splits * p.m * p.n);
    p.partial = static_cast<float*>(stream_scratch_alloc(bytes, p.stream, "qmv_mma partial sums"));
  }
  qmv_mma_kernel<T, Bits, XBlocks><<<grid, warps * 32, 0, p.stream>>>(p);
  check_cuda(cudaGetLastError(), "qmv_mma launch");
  if (splits > 1) {
    const int64_t count = p.m * p.n;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 4096));
    qmv_mma_reduce_kernel<T><<<blocks, 256, 0, p.stream>>>(p, static_cast<int>(splits));
    check_cuda(cudaGetLastError(), "qmv_mma split-K reduction launch");
    stream_scratch_free(p.partial, p.stream, "qmv_mma partial sums");
  }
}

// Two instantiations per dtype: one block of 8 rows of x, or up to 8 blocks (M <= 64).
template <int Bits>
void qmv_mma_for_bits(const QmmProblem& p) {
  if (p.x_dtype == DType::BF16) {
    if (p.m <= 8) return launch_qmv_mma<__nv_bfloat16, Bits, 1>(p);
    return launch_qmv_mma<__nv_bfloat16, Bits, 8>(p);
  }
  if (p.m <= 8) return launch_qmv_mma<__half, Bits, 1>(p);
  launch_qmv_mma<__half, Bits, 8>(p);
}

}  // namespace afq::cuda
