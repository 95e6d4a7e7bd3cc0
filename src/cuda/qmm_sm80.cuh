// Prompt/batch GEMM on the tensor cores (mma.sync m16n8k16, sm_80 and up), y = x @ dequant(W)^T.
// Per main-loop step a block copies an x tile and the *packed* W tile into shared memory with
// cp.async, kStages - 1 steps ahead; then its threads dequantize the W tile (one pack of 32
// q's each: s * q + b in float32, rounded to x's dtype) into a second shared tile, which the
// warps read with ldmatrix into mma.sync. Included by one qmm_sm80_b<bits>.cu per bit width.
//
// When the tiles of M x N are too few to fill the GPU (few rows of x), K is split over
// blockIdx.z: each split writes float partial sums and a small kernel adds them up.
#pragma once

#include <algorithm>
#include <type_traits>

#include "afq/error.h"
#include "src/cuda/dequant.cuh"
#include "src/cuda/ptx.cuh"
#include "src/cuda/qmm.h"
#include "src/cuda/stream_scratch.h"

namespace afq::cuda {

template <class T, int Bits, int BM>
struct Sm80Tile {
  static constexpr int kBM = BM;        // rows of x per block (32, 64 or 128)
  static constexpr int kBN = 128;       // rows of W per block
  static constexpr int kBK = 64;        // columns of K per main-loop step
  static constexpr int kStages = 3;     // depth of the cp.async pipeline
  static constexpr int kThreads = 256;  // 8 warps: 2 along M, 4 along N
  static constexpr int kWarpM = BM / 2, kWarpN = kBN / 4;
  static constexpr int kMmaM = kWarpM / 16;  // m16 tiles per warp
  static constexpr int kMmaN = kWarpN / 8;   // n8 tiles per warp
  // Rows of the x and dequantized-W tiles are padded by 16 bytes, so the 8 row addresses of
  // an ldmatrix (and the dequant stores) fall in distinct banks.
  static constexpr int kRowElems = kBK + 8;
  static constexpr int kWordsPerRow = kBK * Bits / 32;  // packed words of one W row per step
  // 16-byte copies where a row's packed piece allows (even bits), else 8-byte ones.
  static constexpr int kCopyBytes = (kWordsPerRow * 4) % 16 == 0 ? 16 : 8;
  static constexpr int kXTileElems = kBM * kRowElems;
  static constexpr int kWTileWords = kBN * kWordsPerRow;
  static constexpr size_t kSharedBytes =
      kStages * kXTileElems * sizeof(T) + kStages * kWTileWords * 4 + kBN * kRowElems * sizeof(T);
  static_assert(kThreads == kBN * kBK / 32, "one pack of 32 q's per thread in the dequant step");
};

template <class T, int Bits, int BM>
__global__ void __launch_bounds__(256) qmm_sm80_kernel(const QmmProblem p) {
  using Tile = Sm80Tile<T, Bits, BM>;
  extern __shared__ __align__(16) unsigned char shared[];
  T* x_tiles = reinterpret_cast<T*>(shared);                                     // [stages][BM][kRowElems]
  uint32_t* w_tiles = reinterpret_cast<uint32_t*>(x_tiles + Tile::kStages * Tile::kXTileElems);  // [stages][BN][words]
  T* b_tile = reinterpret_cast<T*>(w_tiles + Tile::kStages * Tile::kWTileWords);  // [BN][kRowElems], dequantized

  const int64_t m0 = int64_t{blockIdx.y} * BM, n0 = int64_t{blockIdx.x} * Tile::kBN;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int64_t k = p.k, row_words = k * Bits / 32, groups_per_row = k / p.group_size;
  // This block's range of main-loop steps: all of K, or its share when K is split.
  const int all_steps = static_cast<int>(k / Tile::kBK), splits = gridDim.z;
  const int first_step = static_cast<int>(int64_t{all_steps} * blockIdx.z / splits);
  const int steps = static_cast<int>(int64_t{all_steps} * (blockIdx.z + 1) / splits) - first_step;
  const T* x = static_cast<const T*>(p.x);

  // Copies step `step`'s x tile and packed W tile into pipeline stage `stage`; rows past M or
  // N are filled with zeros.
  auto fetch_to_shared = [&](int step, int stage) {
    for (int i = tid; i < BM * (Tile::kBK / 8); i += Tile::kThreads) {
      const int r = i / (Tile::kBK / 8), piece = i % (Tile::kBK / 8);
      const bool valid = m0 + r < p.m;
      const T* src = x + (valid ? m0 + r : 0) * k + int64_t{first_step + step} * Tile::kBK + piece * 8;
      cp_async<16>(x_tiles + (stage * BM + r) * Tile::kRowElems + piece * 8, src, valid);
    }
    constexpr int kPieces = Tile::kWordsPerRow * 4 / Tile::kCopyBytes;
    for (int i = tid; i < Tile::kBN * kPieces; i += Tile::kThreads) {
      const int r = i / kPieces, piece = i % kPieces;
      const bool valid = n0 + r < p.n;
      const auto* src = reinterpret_cast<const unsigned char*>(p.weight + (valid ? n0 + r : 0) * row_words +
                                                               int64_t{first_step + step} * Tile::kWordsPerRow);
      auto* dst = reinterpret_cast<unsigned char*>(w_tiles + (stage * Tile::kBN + r) * Tile::kWordsPerRow);
      cp_async<Tile::kCopyBytes>(dst + piece * Tile::kCopyBytes, src + piece * Tile::kCopyBytes, valid);
    }
  };

  // This thread's pack in the dequant step: row `pack_row` of the W tile, columns 32*pack_half..
  const int pack_row = tid / 2, pack_half = tid % 2;
  const int64_t scale_row = min(n0 + pack_row, p.n - 1) * groups_per_row;
  auto load_scale_bias = [&](int step, float& scale, float& bias) {
    const int64_t group = (int64_t{first_step + step} * Tile::kBK + pack_half * 32) / p.group_size;
    scale = load_as_float(p.scales, scale_row + group, p.scale_dtype);
    bias = load_as_float(p.biases, scale_row + group, p.scale_dtype);
  };

  auto dequantize_to_shared = [&](int stage, float scale, float bias) {
    const uint32_t* src = w_tiles + (stage * Tile::kBN + pack_row) * Tile::kWordsPerRow + pack_half * Bits;
    uint32_t words[Bits];
    if constexpr (Bits % 4 == 0) {
#pragma unroll
      for (int v = 0; v < Bits / 4; ++v) {
        const uint4 q4 = reinterpret_cast<const uint4*>(src)[v];
        words[4 * v] = q4.x, words[4 * v + 1] = q4.y, words[4 * v + 2] = q4.z, words[4 * v + 3] = q4.w;
      }
    } else if constexpr (Bits % 2 == 0) {
#pragma unroll
      for (int v = 0; v < Bits / 2; ++v) {
        const uint2 q2 = reinterpret_cast<const uint2*>(src)[v];
        words[2 * v] = q2.x, words[2 * v + 1] = q2.y;
      }
    } else {
#pragma unroll
      for (int j = 0; j < Bits; ++j) words[j] = src[j];
    }
    T* dst = b_tile + pack_row * Tile::kRowElems + pack_half * 32;
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      uint32_t out[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int e = v * 8 + j * 2;
        const float lo = fmaf(scale, q_to_float(unpack_q<Bits>(words, e)), bias);
        const float hi = fmaf(scale, q_to_float(unpack_q<Bits>(words, e + 1)), bias);
        out[j] = Pair<T>::from_float2(lo, hi);
      }
      *reinterpret_cast<uint4*>(dst + v * 8) = make_uint4(out[0], out[1], out[2], out[3]);
    }
  };

  float acc[Tile::kMmaM][Tile::kMmaN][4];
#pragma unroll
  for (int i = 0; i < Tile::kMmaM; ++i)
#pragma unroll
    for (int j = 0; j < Tile::kMmaN; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;

  auto matmul = [&](int stage) {
    const T* a = x_tiles + stage * Tile::kXTileElems;
#pragma unroll
    for (int kk = 0; kk < Tile::kBK; kk += 16) {
      uint32_t a_frag[Tile::kMmaM][4], b_frag[Tile::kMmaN][2];
#pragma unroll
      for (int i = 0; i < Tile::kMmaM; ++i) {
        const int row = warp_m * Tile::kWarpM + i * 16 + lane % 16;
        ldmatrix_x4(a_frag[i], a + row * Tile::kRowElems + kk + (lane / 16) * 8);
      }
#pragma unroll
      for (int j = 0; j < Tile::kMmaN; j += 2) {
        // Matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
        const int row = warp_n * Tile::kWarpN + j * 8 + lane % 8 + (lane / 16) * 8;
        uint32_t r[4];
        ldmatrix_x4(r, b_tile + row * Tile::kRowElems + kk + ((lane / 8) % 2) * 8);
        b_frag[j][0] = r[0], b_frag[j][1] = r[1], b_frag[j + 1][0] = r[2], b_frag[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < Tile::kMmaM; ++i)
#pragma unroll
        for (int j = 0; j < Tile::kMmaN; ++j) mma_m16n8k16<T>(acc[i][j], a_frag[i], b_frag[j]);
    }
  };

  // Main loop: stage s holds step s % kStages; kStages - 1 steps are in flight.
#pragma unroll
  for (int s = 0; s < Tile::kStages - 1; ++s) {
    if (s < steps) fetch_to_shared(s, s);
    cp_async_commit();
  }
  float scale, bias;
  load_scale_bias(0, scale, bias);
  for (int step = 0; step < steps; ++step) {
    cp_async_wait<Tile::kStages - 2>();
    __syncthreads();  // this step's tiles landed; every warp is done with the previous step's
    const int next = step + Tile::kStages - 1;
    if (next < steps) fetch_to_shared(next, next % Tile::kStages);
    cp_async_commit();
    dequantize_to_shared(step % Tile::kStages, scale, bias);
    if (step + 1 < steps) load_scale_bias(step + 1, scale, bias);  // in flight during the mma
    __syncthreads();
    matmul(step % Tile::kStages);
  }

  // Epilogue: accumulator c of tile (i, j) is row lane/4 (+8 for c >= 2), column 2*(lane%4) + c%2.
  if (splits > 1) {  // float partial sums [split][m][n]; the bias comes with the reduction
    float* partial = p.partial + int64_t{blockIdx.z} * p.m * p.n;
#pragma unroll
    for (int j = 0; j < Tile::kMmaN; ++j) {
      const int64_t col = n0 + warp_n * Tile::kWarpN + j * 8 + (lane % 4) * 2;
#pragma unroll
      for (int i = 0; i < Tile::kMmaM; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t row = m0 + warp_m * Tile::kWarpM + i * 16 + lane / 4 + half * 8;
          if (row >= p.m) continue;
          if (col < p.n) partial[row * p.n + col] = acc[i][j][2 * half];
          if (col + 1 < p.n) partial[row * p.n + col + 1] = acc[i][j][2 * half + 1];
        }
    }
    return;
  }
  T* y = static_cast<T*>(p.y);
  const bool pairs = p.n % 2 == 0;  // two outputs per 4-byte store when rows stay 4-byte aligned
#pragma unroll
  for (int j = 0; j < Tile::kMmaN; ++j) {
    const int64_t col = n0 + warp_n * Tile::kWarpN + j * 8 + (lane % 4) * 2;
    float bias0 = 0.f, bias1 = 0.f;
    if (p.bias) {
      if (col < p.n) bias0 = load_as_float(p.bias, col, p.bias_dtype);
      if (col + 1 < p.n) bias1 = load_as_float(p.bias, col + 1, p.bias_dtype);
    }
#pragma unroll
    for (int i = 0; i < Tile::kMmaM; ++i)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t row = m0 + warp_m * Tile::kWarpM + i * 16 + lane / 4 + half * 8;
        if (row >= p.m) continue;
        const float v0 = acc[i][j][2 * half] + bias0, v1 = acc[i][j][2 * half + 1] + bias1;
        T* out = y + row * p.n + col;
        if (pairs && col + 1 < p.n) {
          *reinterpret_cast<uint32_t*>(out) = Pair<T>::from_float2(v0, v1);
        } else {
          if (col < p.n) out[0] = Pair<T>::from_float(v0);
          if (col + 1 < p.n) out[1] = Pair<T>::from_float(v1);
        }
      }
  }
}

// y = sum over splits of the partial sums (+ bias), in x's dtype.
template <class T>
__global__ void reduce_splits_kernel(const QmmProblem p, int splits) {
  const int64_t count = p.m * p.n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    float v = 0.f;
    for (int s = 0; s < splits; ++s) v += p.partial[s * count + i];
    if (p.bias) v += load_as_float(p.bias, i % p.n, p.bias_dtype);
    static_cast<T*>(p.y)[i] = Pair<T>::from_float(v);
  }
}

template <class T, int Bits, int BM>
void launch_qmm_sm80(const QmmProblem& problem, int splits) {
  QmmProblem p = problem;
  using Tile = Sm80Tile<T, Bits, BM>;
  auto kernel = qmm_sm80_kernel<T, Bits, BM>;
  allow_shared_memory(reinterpret_cast<const void*>(kernel), static_cast<int>(Tile::kSharedBytes),
                      "qmm_sm80 shared memory attribute");
  const dim3 grid(static_cast<unsigned>((p.n + Tile::kBN - 1) / Tile::kBN), static_cast<unsigned>((p.m + BM - 1) / BM),
                  static_cast<unsigned>(splits));
  if (grid.y > 65535u) throw Error("[affine_qmm_t] problem too large for qmm_sm80: " + describe(p));
  if (splits == 1) {
    kernel<<<grid, Tile::kThreads, Tile::kSharedBytes, p.stream>>>(p);
    check_cuda(cudaGetLastError(), "qmm_sm80 launch");
    return;
  }
  // Stream-ordered scratch (kept by the pool between calls), safe with concurrent streams.
  const size_t partial_bytes = sizeof(float) * static_cast<size_t>(splits * p.m * p.n);
  p.partial = static_cast<float*>(stream_scratch_alloc(partial_bytes, p.stream, "split-K partial sums"));
  kernel<<<grid, Tile::kThreads, Tile::kSharedBytes, p.stream>>>(p);
  check_cuda(cudaGetLastError(), "qmm_sm80 launch");
  const int64_t count = p.m * p.n;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 4096));
  reduce_splits_kernel<T><<<blocks, 256, 0, p.stream>>>(p, splits);
  check_cuda(cudaGetLastError(), "qmm_sm80 split-K reduction launch");
  stream_scratch_free(p.partial, p.stream, "split-K partial sums");
}

// Rows of x per tile: 32 for a few rows, 64 when 128-row tiles would leave multiprocessors idle.
// K is split when even then the tiles cannot give every multiprocessor two blocks.
template <class T, int Bits>
void qmm_sm80_for_dtype(const QmmProblem& p) {
  const DeviceInfo& device = current_device_info();
  const int64_t n_tiles = (p.n + 127) / 128;
  const int bm = p.m <= 32 ? 32 : (p.m <= 64 || n_tiles * ((p.m + 127) / 128) < 2 * device.multiprocessors) ? 64 : 128;
  const int64_t tiles = n_tiles * ((p.m + bm - 1) / bm);
  const int64_t steps = p.k / 64;
  // At least 4 steps per split, so the pipeline fills; at most 16 splits.
  const int splits = static_cast<int>(std::clamp<int64_t>(
      std::min<int64_t>((2 * device.multiprocessors + tiles - 1) / tiles, steps / 4), 1, 16));
  if (bm == 32) return launch_qmm_sm80<T, Bits, 32>(p, splits);
  if (bm == 64) return launch_qmm_sm80<T, Bits, 64>(p, splits);
  launch_qmm_sm80<T, Bits, 128>(p, splits);
}

template <int Bits>
void qmm_sm80_for_bits(const QmmProblem& p) {
  if (p.x_dtype == DType::BF16) return qmm_sm80_for_dtype<__nv_bfloat16, Bits>(p);
  qmm_sm80_for_dtype<__half, Bits>(p);
}

}  // namespace afq::cuda
