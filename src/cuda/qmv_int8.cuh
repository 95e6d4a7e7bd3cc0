// Decode GEMV with int8 activations (4 and 8 bits, M <= 2): the q's meet x in integer byte dot
// products (dp4a), about one instruction per weight where the float GEMV (qmv.cuh) needs three
// and a half, and the packed words stream through a per-warp ring of shared memory filled by
// cp.async, so many loads are in flight without holding registers. Included by one
// qmv_int8_b<bits>.cu per bit width.
//
// x, per block of the grid: each block quantizes its rows of x into shared memory before the
// main loop (the first weight loads are already in flight), with the CPU int8 GEMV's scheme
// (src/cpu/qmv_int8-inl.h): per 32 elements dx = max|x| / 127 and two int8 digits, high
// round(x / dx) and low round((x / dx - high) * 128), so x = dx (high + low / 128) + e with
// |e| <= dx / 256 (relative error near 4e-5, where one digit alone leaves 5e-3). Per chunk of a
// lane (E = 128 / bits elements: 32 at 4 bits, 16 at 8), with S = sum x and X = sum of the
// quantized x, and c = 2^(bits-1) centring the q's so the error stays the size of w:
//   sum w . x = s * (dx/128 * (128 q.high + q.low) + c (S - X)) + b * S.
// The two digit sums fit int32 (32 * 255 * 127 * 128 < 2^31).
//
// Work split: a team of `splits` warps (1, 2 or 4) owns R consecutive rows of W (a tile); each
// warp of it takes a contiguous share of the K stages, where lane l takes the 16-byte chunks l,
// l + 32, ... of each row (a stage is one chunk per lane per row). K is split where the tiles
// alone would leave warps idle (N = 4096: 1024 tiles for 132 x 16 resident warps).
// The grid is as many blocks as stay resident; teams stride over the tiles, so the ring keeps
// loading across tile boundaries. Each lane reads back only what it copied: the loop has no
// barrier but the team's, once per tile, to add its warps' sums.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "afq/error.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/dequant.cuh"
#include "src/cuda/ops_common.cuh"
#include "src/cuda/ptx.cuh"
#include "src/cuda/qmm.h"
#include "src/cuda/static_for.cuh"

namespace afq::cuda {

// One block of 16 warps per multiprocessor (the ring's shared memory allows no more): each block
// quantizes x, so one per multiprocessor does it once there.
inline constexpr int kQmvInt8Warps = 16;
// Ring slots per warp (stages in flight + the one in use) and rows of W per warp tile (a stage
// is R x 512 bytes). Measured on the H200 (blocks of 8 warps then): 2 rows with 8 slots (the
// same shared memory, more loads in flight) was 10-40% slower than 4 with 4: the x digits read from
// shared memory are shared by fewer rows, and the limit is issue, not bytes in flight.
inline constexpr int kQmvInt8Stages = 4;
inline constexpr int kQmvInt8Rows = 4;

template <int Bits>
struct QmvInt8Shape {
  static constexpr int kChunkElems = 128 / Bits;          // a lane's 16 bytes of one row
  static constexpr int kParts = kChunkElems / 16;         // 16-byte pieces of one digit per chunk
  static constexpr int kLanesPerChunk = kChunkElems / 8;  // quantizing: 8 elements per thread
};

// Shared memory of a block: the weight ring, then per row of x the two digit arrays (as
// [part][chunk][16 bytes], so lanes reading consecutive chunks hit consecutive banks) and one
// float4 per chunk {dx / 128, c (S - X), S, unused}.
template <int Bits>
constexpr size_t qmv_int8_ring_bytes() {
  return size_t{kQmvInt8Warps} * kQmvInt8Stages * kQmvInt8Rows * 32 * 16;
}
// The team's partial sums, double-buffered by tile: [2][warps][rows of x * R] floats.
inline constexpr size_t kQmvInt8PartialBytes = 2 * kQmvInt8Warps * 16 * sizeof(float);
template <int Bits>
size_t qmv_int8_shared_bytes(int64_t k, int rows_of_x) {
  const int64_t chunks = k / QmvInt8Shape<Bits>::kChunkElems;
  return qmv_int8_ring_bytes<Bits>() + kQmvInt8PartialBytes +
         static_cast<size_t>(rows_of_x) * static_cast<size_t>(2 * k + 16 * chunks);
}

// Barrier `id` (1..15; 0 is __syncthreads') for `threads` threads, whole warps. Teams of two or
// more warps number at most 8.
__device__ __forceinline__ void named_barrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// A scale or bias (BF16 or F16) as float: both are the top or the whole of a 16-bit pattern.
template <class ScaleT>
__device__ __forceinline__ float scale_to_float(unsigned short u) {
  if constexpr (std::is_same_v<ScaleT, __nv_bfloat16>)
    return __uint_as_float(uint32_t{u} << 16);
  else
    return __half2float(__ushort_as_half(u));
}

// acc + dot of four unsigned bytes of a with four signed bytes of b.
__device__ __forceinline__ int dp4a_u8_s8(uint32_t a, uint32_t b, int acc) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(acc));
  return d;
}

// Quantizes rows [m0, m0 + rows) of x into the block's shared arrays (rows past M as zeros).
// A thread takes 8 consecutive elements; 4 consecutive lanes make a block of 32. At 4 bits the
// bytes of each 8 are stored as elements 0 2 4 6 1 3 5 7, the order of a word's low and high
// nibbles; at 8 bits in their natural order.
template <class T, int Bits, int RowsOfX>
__device__ void quantize_x_rows(const QmmProblem& p, int64_t m0, int rows, unsigned char* digits, float4* params) {
  using S = QmvInt8Shape<Bits>;
  const int k = static_cast<int>(p.k), chunks = k / S::kChunkElems, pieces = k / 8;
  constexpr float kMiddle = float(1 << (Bits - 1));
  constexpr int kBatch = 4;  // pieces loaded before any is used: one L2 round trip for K <= 16384
  const int threads = static_cast<int>(blockDim.x);
  for (int i = 0; i < RowsOfX; ++i) {
    const uint4* x = reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) + (m0 + i) * p.k);
    unsigned char* hi_row = digits + i * 2 * k;
    unsigned char* lo_row = hi_row + k;
    for (int base = 0; base < pieces; base += kBatch * threads) {
      uint4 raw[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int piece = base + u * threads + static_cast<int>(threadIdx.x);
        raw[u] = make_uint4(0, 0, 0, 0);
        if (piece < pieces && i < rows) raw[u] = __ldg(x + piece);
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        // Every lane runs the shuffles (the trip count is the same for the whole block).
        const int at = base + u * threads + static_cast<int>(threadIdx.x);
        const bool active = at < pieces;
        const uint32_t w[4] = {raw[u].x, raw[u].y, raw[u].z, raw[u].w};
        float v[8];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 f = Pair<T>::to_float2(w[j]);
          v[2 * j] = f.x;
          v[2 * j + 1] = f.y;
        }
        float amax = 0.f, sum = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(v[e])), sum += v[e];
        amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 2));
        const float dx = amax * (1.f / 127.f), inv = amax > 0.f ? 127.f / amax : 0.f;
        // Rounding through 1.5 * 2^23: t = r + that holds round(r) in its low bits (two's
        // complement, |r| < 2^22), so one add rounds and gives the byte, and t - 1.5 * 2^23 is the
        // rounded value as float. |r| <= 127, so high is in [-127, 127] and low in [-64, 64].
        constexpr float kRound = 12582912.f;
        uint32_t hi[8], lo[8];
        float residual = 0.f;  // 128 * sum (r - high - low / 128): what the digits leave out
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const float r = v[e] * inv;
          const float th = r + kRound, d = (r - (th - kRound)) * 128.f;
          const float tl = d + kRound;
          hi[e] = __float_as_uint(th);
          lo[e] = __float_as_uint(tl);
          residual += d - (tl - kRound);
        }
#pragma unroll
        for (int offset = 1; offset < S::kLanesPerChunk; offset *= 2) {
          sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
          residual += __shfl_xor_sync(0xFFFFFFFFu, residual, offset);
        }
        if (!active) continue;
        // The low bytes of four words as one word (three byte permutes).
        auto pack = [](uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
          return __byte_perm(__byte_perm(a, b, 0x0040), __byte_perm(c, d, 0x0040), 0x5410);
        };
        uint2 hi8, lo8;
        if constexpr (Bits == 4) {
          hi8 = make_uint2(pack(hi[0], hi[2], hi[4], hi[6]), pack(hi[1], hi[3], hi[5], hi[7]));
          lo8 = make_uint2(pack(lo[0], lo[2], lo[4], lo[6]), pack(lo[1], lo[3], lo[5], lo[7]));
        } else {
          hi8 = make_uint2(pack(hi[0], hi[1], hi[2], hi[3]), pack(hi[4], hi[5], hi[6], hi[7]));
          lo8 = make_uint2(pack(lo[0], lo[1], lo[2], lo[3]), pack(lo[4], lo[5], lo[6], lo[7]));
        }
        // Piece `at` of its row: chunk at / (E/8); within it, part (q / 2) and half (q % 2).
        const int chunk = at / S::kLanesPerChunk, q = at % S::kLanesPerChunk;
        const int offset = ((q / 2) * chunks + chunk) * 16 + (q % 2) * 8;
        *reinterpret_cast<uint2*>(hi_row + offset) = hi8;
        *reinterpret_cast<uint2*>(lo_row + offset) = lo8;
        // c (S - X) = c * dx * sum (r - high - low / 128), up to the rounding of dx * (1 / dx).
        if (q == 0)
          params[i * chunks + chunk] =
              make_float4(dx * (1.f / 128.f), kMiddle * dx * residual * (1.f / 128.f), sum, 0.f);
      }
    }
  }
}

template <class T, class ScaleT, int Bits, int RowsOfX>
__global__ void __launch_bounds__(kQmvInt8Warps * 32, 1) qmv_int8_kernel(const QmmProblem p, int splits) {
  using S = QmvInt8Shape<Bits>;
  constexpr int R = kQmvInt8Rows, D = kQmvInt8Stages;
  extern __shared__ __align__(16) unsigned char shared[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Offsets inside a tile fit 32 bits (R rows); tiles are reached through 64-bit base pointers.
  const int k = static_cast<int>(p.k), n = static_cast<int>(p.n);
  const int chunks = k / S::kChunkElems, row_words = k * Bits / 32, groups_per_row = k / p.group_size;
  const int group_shift = __ffs(p.group_size) - 1;
  const int64_t m0 = int64_t{blockIdx.y} * RowsOfX;
  const int rows_of_x = static_cast<int>(min(int64_t{RowsOfX}, p.m - m0));
  const auto* scales = static_cast<const unsigned short*>(p.scales);
  const auto* biases = static_cast<const unsigned short*>(p.biases);

  uint4* ring = reinterpret_cast<uint4*>(shared) + warp * (D * R * 32);
  float* partial_sums = reinterpret_cast<float*>(shared + qmv_int8_ring_bytes<Bits>());
  unsigned char* digits = shared + qmv_int8_ring_bytes<Bits>() + kQmvInt8PartialBytes;
  float4* params = reinterpret_cast<float4*>(digits + RowsOfX * 2 * k);

  // This warp's items: stage `stage` (of its share) of tile `tile`, tiles strided over the teams.
  const int team = warp / splits, split = warp % splits, teams = kQmvInt8Warps / splits;
  const int tiles = (n + R - 1) / R;
  const int all_stages = (chunks + 31) / 32;
  const int stage_begin = all_stages * split / splits, stage_end = all_stages * (split + 1) / splits;
  const int first_tile = static_cast<int>(blockIdx.x) * teams + team;
  const int tile_stride = static_cast<int>(gridDim.x) * teams;
  const int my_tiles = first_tile < tiles ? (tiles - first_tile + tile_stride - 1) / tile_stride : 0;
  const int items = my_tiles * (stage_end - stage_begin);

  // Issuing: the chunk copies of an item into its ring slot, its scales and biases into registers.
  unsigned short scale_bits[D][R], bias_bits[D][R];
  int issue_tile = first_tile, issue_stage = stage_begin, issued = 0;
  const uint32_t* w_tile = p.weight + int64_t{first_tile} * R * row_words;
  int64_t sb_tile = int64_t{first_tile} * R * groups_per_row;
  int last_row = min(R, n - first_tile * R) - 1;  // rows past N re-read the last row
  auto issue = [&](auto slot_constant) {
    constexpr int slot = decltype(slot_constant)::value;
    if (issued < items) {
      const int c = issue_stage * 32 + lane;
      if (c < chunks) {
        const int group = (c * S::kChunkElems) >> group_shift;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int row = min(r, last_row);
          cp_async<16>(ring + (slot * R + r) * 32 + lane, w_tile + row * row_words + c * 4, true);
          scale_bits[slot][r] = __ldg(scales + sb_tile + row * groups_per_row + group);
          bias_bits[slot][r] = __ldg(biases + sb_tile + row * groups_per_row + group);
        }
      }
      if (++issue_stage == stage_end) {
        issue_stage = stage_begin;
        issue_tile += tile_stride;
        w_tile += int64_t{tile_stride} * R * row_words;
        sb_tile += int64_t{tile_stride} * R * groups_per_row;
        last_row = min(R, n - issue_tile * R) - 1;
      }
    }
    cp_async_commit();  // one group per call, empty or not: the waits count calls
    ++issued;
  };

  // The weights are no kernel's output: their loads may start while the kernel before this one
  // (which writes x) still runs; x is read after it has finished (dependent_launch.cuh).
  allow_dependent_launch();
  static_for<D - 1>([&](auto j) { issue(j); });
  wait_for_prior_kernel();
  quantize_x_rows<T, Bits, RowsOfX>(p, m0, rows_of_x, digits, params);
  __syncthreads();

  float acc[RowsOfX][R];
#pragma unroll
  for (int i = 0; i < RowsOfX; ++i)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[i][r] = 0.f;
  int tile = first_tile, stage = stage_begin, parity = 0;

  auto compute = [&](auto slot_constant) {
    constexpr int slot = decltype(slot_constant)::value;
    const int c = stage * 32 + lane;
    if (c < chunks) {
      uint32_t w[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint4 v = ring[(slot * R + r) * 32 + lane];
        w[r][0] = v.x, w[r][1] = v.y, w[r][2] = v.z, w[r][3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < RowsOfX; ++i) {
        // x of this chunk: kParts pieces of 16 bytes per digit (16 words in all at 4 bits).
        uint32_t xh[4 * S::kParts], xl[4 * S::kParts];
        const unsigned char* hi_row = digits + i * 2 * k;
#pragma unroll
        for (int part = 0; part < S::kParts; ++part) {
          const uint4 h = *reinterpret_cast<const uint4*>(hi_row + (part * chunks + c) * 16);
          const uint4 l = *reinterpret_cast<const uint4*>(hi_row + k + (part * chunks + c) * 16);
          xh[4 * part] = h.x, xh[4 * part + 1] = h.y, xh[4 * part + 2] = h.z, xh[4 * part + 3] = h.w;
          xl[4 * part] = l.x, xl[4 * part + 1] = l.y, xl[4 * part + 2] = l.z, xl[4 * part + 3] = l.w;
        }
        const float4 xp = params[i * chunks + c];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          int dot_hi = 0, dot_lo = 0;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if constexpr (Bits == 4) {
              const uint32_t even = w[r][j] & 0x0F0F0F0Fu, odd = (w[r][j] >> 4) & 0x0F0F0F0Fu;
              dot_hi = dp4a_u8_s8(even, xh[2 * j], dp4a_u8_s8(odd, xh[2 * j + 1], dot_hi));
              dot_lo = dp4a_u8_s8(even, xl[2 * j], dp4a_u8_s8(odd, xl[2 * j + 1], dot_lo));
            } else {
              dot_hi = dp4a_u8_s8(w[r][j], xh[j], dot_hi);
              dot_lo = dp4a_u8_s8(w[r][j], xl[j], dot_lo);
            }
          }
          const float v = fmaf(static_cast<float>(dot_hi * 128 + dot_lo), xp.x, xp.y);
          const float sc = scale_to_float<ScaleT>(scale_bits[slot][r]), bi = scale_to_float<ScaleT>(bias_bits[slot][r]);
          acc[i][r] = fmaf(sc, v, fmaf(bi, xp.z, acc[i][r]));
        }
      }
    }
    if (++stage < stage_end) return;
    // The share's last stage: sum the lanes (lane i * R + r keeps sum (i, r)), then the team's
    // warps, write, start the next tile.
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < RowsOfX; ++i)
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float v = warp_sum(acc[i][r]);
        acc[i][r] = 0.f;
        if (lane == i * R + r) sum = v;
      }
    const int i = lane / R, row = tile * R + lane % R;
    if (splits > 1) {
      float* mine = partial_sums + (parity * kQmvInt8Warps + warp) * 16;
      if (lane < RowsOfX * R) mine[lane] = sum;
      named_barrier(1 + team, splits * 32);
      if (split == 0 && lane < RowsOfX * R)
        for (int w = 1; w < splits; ++w) sum += mine[w * 16 + lane];
      parity ^= 1;
    }
    if (split == 0 && lane < RowsOfX * R && i < rows_of_x && row < n) {
      if (p.bias) sum += load_as_float(p.bias, row, p.bias_dtype);
      static_cast<T*>(p.y)[(m0 + i) * n + row] = Pair<T>::from_float(sum);
    }
    stage = stage_begin;
    tile += tile_stride;
  };

  // Item `done + j` sits in slot j; before computing it, the item D - 1 ahead is issued into
  // the slot computed last, and all but the newest D - 1 copy groups are waited for.
  for (int done = 0; done < items; done += D) {
    static_for<D>([&](auto j) {
      constexpr int slot = decltype(j)::value;
      issue(std::integral_constant<int, (slot + D - 1) % D>{});
      cp_async_wait<D - 1>();
      if (done + slot < items) compute(j);
    });
  }
  cp_async_wait<0>();
}

// BF16 or F16 scales (F32 ones take the float GEMV), offsets within 32 bits, shared memory.
template <int Bits>
bool qmv_int8_fits(const QmmProblem& p, const DeviceInfo& device) {
  if (p.scale_dtype != DType::BF16 && p.scale_dtype != DType::F16) return false;
  if (p.n > (int64_t{1} << 30) || p.k * kQmvInt8Rows * Bits / 32 * 2 > (int64_t{1} << 31)) return false;
  return p.m <= 2 &&
         qmv_int8_shared_bytes<Bits>(p.k, static_cast<int>(p.m)) <= static_cast<size_t>(device.shared_bytes_per_block);
}

template <class T, class ScaleT, int Bits, int RowsOfX>
void launch_qmv_int8(const QmmProblem& p) {
  auto* kernel = qmv_int8_kernel<T, ScaleT, Bits, RowsOfX>;
  const size_t shared = qmv_int8_shared_bytes<Bits>(p.k, RowsOfX);
  const DeviceInfo& device = current_device_info();
  allow_shared_memory(reinterpret_cast<const void*>(kernel), device.shared_bytes_per_block,
                      "qmv_int8 shared memory opt-in");
  const int64_t tiles = (p.n + kQmvInt8Rows - 1) / kQmvInt8Rows;
  const int64_t stages = (p.k / QmvInt8Shape<Bits>::kChunkElems + 31) / 32;
  const int64_t x_blocks = (p.m + RowsOfX - 1) / RowsOfX;
  // Warps that stay resident (per block of x rows): one block per multiprocessor, since 512
  // threads of up to 128 registers fill the register file. K is split in two or four where the
  // tiles leave half of those warps idle (each share keeps at least two stages).
  const int64_t blocks_resident = std::max<int64_t>(1, device.multiprocessors / x_blocks);
  const int64_t warps_resident = blocks_resident * kQmvInt8Warps;
  int splits = 1;
  while (splits < 4 && tiles * splits * 2 <= warps_resident && stages >= splits * 4) splits *= 2;
  // As few teams as take the same number of tiles each: one with a tile more would finish last.
  const int64_t teams_resident = warps_resident / splits;
  const int64_t tiles_per_team = (tiles + teams_resident - 1) / teams_resident;
  const int64_t teams = (tiles + tiles_per_team - 1) / tiles_per_team;
  const int64_t teams_per_block = kQmvInt8Warps / splits;
  const dim3 grid(static_cast<unsigned>((teams + teams_per_block - 1) / teams_per_block),
                  static_cast<unsigned>(x_blocks));
  if (x_blocks > 65535) throw Error("[affine_qmm_t] problem too large for qmv_int8: " + describe(p));
  check_cuda(
      launch_dependent(kernel, grid, dim3(kQmvInt8Warps * 32), shared, p.stream, device.compute_capability, p, splits),
      "qmv_int8 launch");
}

template <int Bits>
void qmv_int8_for_bits(const QmmProblem& p) {
  auto launch = [&](auto x_tag, auto scale_tag) {
    using T = decltype(x_tag);
    using ScaleT = decltype(scale_tag);
    if (p.m == 1) return launch_qmv_int8<T, ScaleT, Bits, 1>(p);
    launch_qmv_int8<T, ScaleT, Bits, 2>(p);
  };
  auto with_scales = [&](auto x_tag) {
    if (p.scale_dtype == DType::BF16) return launch(x_tag, __nv_bfloat16{});
    launch(x_tag, __half{});
  };
  if (p.x_dtype == DType::BF16) return with_scales(__nv_bfloat16{});
  with_scales(__half{});
}

}  // namespace afq::cuda
