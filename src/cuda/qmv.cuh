// Decode GEMV: y[m, n] = x[m, k] @ dequant(W)^T for a few rows of x. The weight is read exactly
// once, in 16-byte coalesced loads of the checkpoint's own layout, two chunks per thread in
// flight; dequantization happens in registers. Included by one qmv_b<bits>.cu per bit width.
//
// Work split: a block owns kRows consecutive rows of W (all of K); its threads stride over K in
// chunks (consecutive threads read consecutive 16-byte pieces of a row), then the block sums.
// y = s * (x . q) + b * sum(x) per group, so the bias costs one FMA per group, not per weight;
// the q's enter as 1 + q / 2^Bits (three instructions a weight: shift, LOP3, FMA).
#pragma once

#include <algorithm>
#include <cstdlib>

#include "afq/error.h"
#include "src/cuda/dequant.cuh"
#include "src/cuda/qmm.h"

namespace afq::cuda {

// A thread's unit of one row: kPacks packs of 32 q's, kWords words. When Vectorized, kWords is
// a multiple of 4 and every chunk starts on 16 bytes (needs k % kElements == 0).
template <int Bits, bool Vectorized>
struct QmvChunk {
  static constexpr int kPacks = !Vectorized ? 1 : (Bits == 2 || Bits == 6) ? 2 : (Bits == 3 || Bits == 5) ? 4 : 1;
  static constexpr int kWords = kPacks * Bits;
  static constexpr int kElements = kPacks * 32;
};

// Rows of W per block: enough loads in flight per thread (4-12 vectors) without spilling.
template <int Bits>
constexpr int qmv_rows_per_block() {
  return (Bits == 2 || Bits == 4) ? 4 : Bits == 5 ? 1 : 2;
}

inline constexpr int kQmvUnroll = 2;        // chunks per thread loaded before any is used

// Whether a step's scales and biases are loaded with its words, one step ahead (else in the
// arithmetic). Measured on the H200 at M=1: 8 bits 8-11% faster; 4 bits, whose four rows a block
// hold 16 more registers, 5-20% slower.
template <int Bits>
constexpr bool qmv_prefetches_scales() {
  return Bits == 8;
}

// Main-loop steps each thread makes (more: fewer threads per row, a longer pipeline). 4 unless
// AFQ_CUDA_QMV_STEPS says otherwise (for tuning).
inline int qmv_steps_per_thread() {
  static const int steps = [] {
    const char* env = std::getenv("AFQ_CUDA_QMV_STEPS");
    const int v = env ? std::atoi(env) : 0;
    return v > 0 ? v : 4;
  }();
  return steps;
}
inline constexpr int kQmvMaxThreads = 256;  // 8 warps

template <class T, int Bits, bool Vectorized, int RowsOfX>
__global__ void __launch_bounds__(kQmvMaxThreads) qmv_kernel(const QmmProblem p) {
  using Chunk = QmvChunk<Bits, Vectorized>;
  constexpr int kRows = qmv_rows_per_block<Bits>();
  const int64_t n0 = int64_t{blockIdx.x} * kRows;
  const int64_t m0 = int64_t{blockIdx.y} * RowsOfX;
  const int rows_of_x = static_cast<int>(min(int64_t{RowsOfX}, p.m - m0));
  const int64_t k = p.k;
  const int64_t groups_per_row = k / p.group_size;
  const int group_shift = __ffs(p.group_size) - 1;  // group sizes are powers of two
  const int chunks = static_cast<int>(k / Chunk::kElements);
  const T* x = static_cast<const T*>(p.x) + m0 * k;

  // Rows past N re-read row N-1 (always valid) and their results are dropped.
  int64_t row[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) row[r] = min(n0 + r, p.n - 1);

  float acc[RowsOfX][kRows];
#pragma unroll
  for (int i = 0; i < RowsOfX; ++i)
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[i][r] = 0.f;

  // Software pipeline: the loads of the next step (its words, and where qmv_prefetches_scales its
  // groups' scales and biases) are issued before this step's arithmetic, so every thread keeps
  // memory busy while it computes. Chunks past the end re-read the last one.
  constexpr bool kPrefetchScales = qmv_prefetches_scales<Bits>();
  struct Step {
    uint32_t words[kQmvUnroll][kRows][Chunk::kWords];
    float scale[kQmvUnroll][Chunk::kPacks][kRows], bias[kQmvUnroll][Chunk::kPacks][kRows];
  };
  auto load_step = [&](Step& step, int c0) {
#pragma unroll
    for (int u = 0; u < kQmvUnroll; ++u) {
      const int c = min(c0 + u * static_cast<int>(blockDim.x), chunks - 1);
#pragma unroll
      for (int pack = 0; pack < Chunk::kPacks; ++pack) {
        if constexpr (!kPrefetchScales) break;
        const int64_t group = (int64_t{c} * Chunk::kElements + pack * 32) >> group_shift;  // a pack never spans two
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          step.scale[u][pack][r] = load_as_float(p.scales, row[r] * groups_per_row + group, p.scale_dtype);
          step.bias[u][pack][r] = load_as_float(p.biases, row[r] * groups_per_row + group, p.scale_dtype);
        }
      }
      auto& words = step.words;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const uint32_t* src = p.weight + row[r] * (k * Bits / 32) + int64_t{c} * Chunk::kWords;
        if constexpr (Vectorized) {
#pragma unroll
          for (int v = 0; v < Chunk::kWords / 4; ++v) {
            const uint4 q4 = __ldg(reinterpret_cast<const uint4*>(src) + v);
            words[u][r][4 * v + 0] = q4.x;
            words[u][r][4 * v + 1] = q4.y;
            words[u][r][4 * v + 2] = q4.z;
            words[u][r][4 * v + 3] = q4.w;
          }
        } else {
#pragma unroll
          for (int j = 0; j < Chunk::kWords; ++j) words[u][r][j] = __ldg(src + j);
        }
      }
    }
  };
  const int stride = kQmvUnroll * static_cast<int>(blockDim.x);
  Step step{};  // value-initialized: the scale arrays stay unused unless kPrefetchScales
  load_step(step, threadIdx.x);
  for (int c0 = threadIdx.x; c0 < chunks; c0 += stride) {
    Step next{};
    if (c0 + stride < chunks) load_step(next, c0 + stride);
    const auto& words = step.words;
#pragma unroll
    for (int u = 0; u < kQmvUnroll; ++u) {
      const int c = c0 + u * static_cast<int>(blockDim.x);
      if (c >= chunks) break;
#pragma unroll
      for (int pack = 0; pack < Chunk::kPacks; ++pack) {
        const int64_t kk = int64_t{c} * Chunk::kElements + pack * 32;  // first column of this pack
        const int64_t group = kk >> group_shift;                         // a pack never spans two groups
        // The q's come as 1 + q / 2^Bits (q_to_unit_float), which these factors undo.
        float scale[kRows], bias[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float s = kPrefetchScales ? step.scale[u][pack][r]
                                          : load_as_float(p.scales, row[r] * groups_per_row + group, p.scale_dtype);
          const float b = kPrefetchScales ? step.bias[u][pack][r]
                                          : load_as_float(p.biases, row[r] * groups_per_row + group, p.scale_dtype);
          scale[r] = s * float(1 << Bits);
          bias[r] = b - scale[r];
        }
        float dot[RowsOfX][kRows], x_sum[RowsOfX];
#pragma unroll
        for (int i = 0; i < RowsOfX; ++i) {
          x_sum[i] = 0.f;
#pragma unroll
          for (int r = 0; r < kRows; ++r) dot[i][r] = 0.f;
        }
        // Eight q's at a time: dequantized once, used by every row of x.
#pragma unroll
        for (int sub = 0; sub < 4; ++sub) {
          float q[kRows][8];
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int e = 0; e < 8; ++e) q[r][e] = q_to_unit_float<Bits>(words[u][r] + pack * Bits, sub * 8 + e);
#pragma unroll
          for (int i = 0; i < RowsOfX; ++i) {
            if (i >= rows_of_x) break;
            const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + i * k + kk + sub * 8));
            const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
            float xf[8];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const float2 f = Pair<T>::to_float2(xw[j]);
              xf[2 * j] = f.x;
              xf[2 * j + 1] = f.y;
            }
#pragma unroll
            for (int e = 0; e < 8; ++e) x_sum[i] += xf[e];
#pragma unroll
            for (int r = 0; r < kRows; ++r)
#pragma unroll
              for (int e = 0; e < 8; ++e) dot[i][r] = fmaf(xf[e], q[r][e], dot[i][r]);
          }
        }
#pragma unroll
        for (int i = 0; i < RowsOfX; ++i)
#pragma unroll
          for (int r = 0; r < kRows; ++r) acc[i][r] = fmaf(scale[r], dot[i][r], fmaf(bias[r], x_sum[i], acc[i][r]));
      }
    }
    step = next;
  }

  // Sum over the block: shuffles within each warp, then shared memory across warps.
  __shared__ float partial[kQmvMaxThreads / 32][RowsOfX][kRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < RowsOfX; ++i)
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float v = acc[i][r];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
      if (lane == 0) partial[warp][i][r] = v;
    }
  __syncthreads();
  const int warps = blockDim.x / 32;
  for (int t = threadIdx.x; t < RowsOfX * kRows; t += blockDim.x) {
    const int i = t / kRows, r = t % kRows;
    const int64_t n = n0 + r;
    if (i >= rows_of_x || n >= p.n) continue;
    float v = 0.f;
    for (int w = 0; w < warps; ++w) v += partial[w][i][r];
    if (p.bias) v += load_as_float(p.bias, n, p.bias_dtype);
    static_cast<T*>(p.y)[(m0 + i) * p.n + n] = Pair<T>::from_float(v);
  }
}

template <class T, int Bits, bool Vectorized, int RowsOfX>
void launch_qmv(const QmmProblem& p) {
  using Chunk = QmvChunk<Bits, Vectorized>;
  constexpr int kRows = qmv_rows_per_block<Bits>();
  const int64_t chunks = p.k / Chunk::kElements;
  // Threads such that each does qmv_steps_per_thread() steps of kQmvUnroll chunks where K
  // allows, from 1 warp to 8.
  const int64_t per_thread = int64_t{kQmvUnroll} * qmv_steps_per_thread();
  const int64_t wanted = (chunks + per_thread - 1) / per_thread;
  const int threads = static_cast<int>(std::clamp<int64_t>((wanted + 31) / 32 * 32, 32, kQmvMaxThreads));
  const dim3 grid(static_cast<unsigned>((p.n + kRows - 1) / kRows), static_cast<unsigned>((p.m + RowsOfX - 1) / RowsOfX));
  if (grid.x > 2147483647u || grid.y > 65535u) throw Error("[affine_qmm_t] problem too large for qmv: " + describe(p));
  qmv_kernel<T, Bits, Vectorized, RowsOfX><<<grid, threads, 0, p.stream>>>(p);
  check_cuda(cudaGetLastError(), "qmv launch");
}

// Picks the row count of x per block and whether chunks are 16-byte vectors.
template <class T, int Bits>
void qmv_for_dtype(const QmmProblem& p) {
  const bool vectorized = p.k % QmvChunk<Bits, true>::kElements == 0;
  if (vectorized || Bits == 4 || Bits == 8) {
    if (p.m == 1) return launch_qmv<T, Bits, true, 1>(p);
    if (p.m == 2) return launch_qmv<T, Bits, true, 2>(p);
    if (p.m <= 4) return launch_qmv<T, Bits, true, 4>(p);
    return launch_qmv<T, Bits, true, 8>(p);
  }
  if constexpr (Bits != 4 && Bits != 8) launch_qmv<T, Bits, false, 8>(p);
}

template <int Bits>
void qmv_for_bits(const QmmProblem& p) {
  if (p.x_dtype == DType::BF16) {
    qmv_for_dtype<__nv_bfloat16, Bits>(p);
  } else {
    qmv_for_dtype<__half, Bits>(p);
  }
}

}  // namespace afq::cuda
