// Prompt attention: a block takes 32 query rows of one head and walks the keys they may see in
// tiles of 32, keeping a running max and sum per row (the online softmax of flash attention), so
// scores are never written out. CUDA cores and float32 throughout: the straightforward version
// (tensor cores are a follow-up). K is stored with an odd row stride in shared memory, so the 32
// lanes, one key each, read 32 different banks.
#include <cuda_bf16.h>

#include <cmath>

#include "afq/cuda_ops.h"
#include "src/cuda/attention_shape.h"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRows = 32;                     // query rows per block
constexpr int kRowsPerWarp = kRows / kWarps;  // each warp owns 8 rows
constexpr int kKeys = 32;                     // keys per tile: one per lane when scoring

// Shared memory: Q [kRows][hd/2] and K [kKeys][hd/2 + 1] as bf16 pairs, V [kKeys][hd] bf16,
// P [kWarps][kRowsPerWarp][kKeys] float.
size_t shared_bytes(int hd) {
  return (size_t{kRows} * (hd / 2) + size_t{kKeys} * (hd / 2 + 1)) * 4 + size_t{kKeys} * hd * 2 +
         size_t{kWarps} * kRowsPerWarp * kKeys * 4;
}

__device__ __forceinline__ float2 bf16x2_to_float2(uint32_t u) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xFFFF0000u));
}

template <int DimsPerLane>
__global__ void __launch_bounds__(kWarps * 32)
    attention_prefill_kernel(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                             __nv_bfloat16* out, AttentionShape s) {
  extern __shared__ uint32_t shared[];
  const int hd = s.head_dim, half = hd / 2, k_stride = half + 1;
  uint32_t* q_s = shared;                 // [kRows][half]
  uint32_t* k_s = q_s + kRows * half;     // [kKeys][k_stride]
  uint32_t* v_s = k_s + kKeys * k_stride; // [kKeys][half]
  float* p_s = reinterpret_cast<float*>(v_s + kKeys * half);  // [kWarps][kRowsPerWarp][kKeys]
  const __nv_bfloat16* v_h = reinterpret_cast<const __nv_bfloat16*>(v_s);

  const int head = blockIdx.y, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t q_stride = int64_t{s.heads} * hd, kv_stride = int64_t{s.kv_heads} * hd;
  const int64_t kv_offset = int64_t{head / (s.heads / s.kv_heads)} * hd;
  const int64_t q0 = int64_t{blockIdx.x} * kRows;
  const int rows = static_cast<int>(min(int64_t{kRows}, s.n - q0));

  // Q tile (rows past n are zeros; their results are never written).
  for (int i = threadIdx.x; i < kRows * half; i += blockDim.x) {
    const int r = i / half, c = i % half;
    q_s[i] = r < rows ? reinterpret_cast<const uint32_t*>(q + (q0 + r) * q_stride + int64_t{head} * hd)[c] : 0u;
  }
  // Keys the block's rows may see: from the first row's window start to the last row itself.
  const int64_t last_key = s.position + q0 + rows - 1;
  const int64_t first_key = s.window > 0 ? max(int64_t{0}, s.position + q0 - s.window + 1) : 0;

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DimsPerLane];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < DimsPerLane; ++i) acc[r][i] = 0.f;
  }
  float* p_warp = p_s + warp * kRowsPerWarp * kKeys;

  for (int64_t key0 = first_key; key0 <= last_key; key0 += kKeys) {
    __syncthreads();  // the previous tile is consumed (and, the first time, Q is loaded)
    // K and V tiles; keys past last_key become zeros, so that masked products stay 0 * 0.
    for (int i = threadIdx.x; i < kKeys * half; i += blockDim.x) {
      const int j = i / half, c = i % half;
      const int64_t key = key0 + j;
      uint32_t kw = 0u, vw = 0u;
      if (key <= last_key) {
        kw = reinterpret_cast<const uint32_t*>(k + key * kv_stride + kv_offset)[c];
        vw = reinterpret_cast<const uint32_t*>(v + key * kv_stride + kv_offset)[c];
      }
      k_s[j * k_stride + c] = kw;
      v_s[j * half + c] = vw;
    }
    __syncthreads();

    // Scores: lane j scores key key0 + j against the warp's rows.
    float dot[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) dot[r] = 0.f;
    for (int c = 0; c < half; ++c) {
      const float2 kk = bf16x2_to_float2(k_s[lane * k_stride + c]);
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float2 qq = bf16x2_to_float2(q_s[(warp * kRowsPerWarp + r) * half + c]);
        dot[r] += qq.x * kk.x + qq.y * kk.y;
      }
    }
    const int64_t key = key0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t query = s.position + q0 + warp * kRowsPerWarp + r;  // absolute position of the row
      const bool visible = key <= query && key <= last_key && (s.window == 0 || key > query - s.window);
      const float score = visible ? dot[r] * s.scale : -INFINITY;
      const float m_new = fmaxf(m[r], warp_max(score));
      // A row that has seen no visible key yet keeps max -inf: nothing to rescale, nothing to add.
      const float correction = m_new == -INFINITY ? 1.f : expf(m[r] - m_new);
      const float p = m_new == -INFINITY ? 0.f : expf(score - m_new);
      l[r] = l[r] * correction + warp_sum(p);
      m[r] = m_new;
      p_warp[r * kKeys + lane] = p;
#pragma unroll
      for (int i = 0; i < DimsPerLane; ++i) acc[r][i] *= correction;
    }
    __syncwarp();
    // Weighted values: lane holds dims lane, lane + 32, ...
    for (int j = 0; j < kKeys; ++j) {
#pragma unroll
      for (int i = 0; i < DimsPerLane; ++i) {
        const int d = lane + 32 * i;
        const float vv = d < hd ? __bfloat162float(v_h[j * hd + d]) : 0.f;
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][i] += p_warp[r * kKeys + j] * vv;
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = warp * kRowsPerWarp + r;
    if (row >= rows) continue;
    __nv_bfloat16* o = out + (q0 + row) * q_stride + int64_t{head} * hd;
#pragma unroll
    for (int i = 0; i < DimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) o[d] = from_float<__nv_bfloat16>(acc[r][i] / l[r]);
    }
  }
}

template <int DimsPerLane>
void launch(const void* q, const void* k, const void* v, void* out, const AttentionShape& s, cudaStream_t stream) {
  const size_t bytes = shared_bytes(s.head_dim);
  auto kernel = attention_prefill_kernel<DimsPerLane>;
  // Past 48 KiB (head_dim 256) a kernel must opt in to more shared memory.
  if (bytes > 48 * 1024)
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
               "attention_prefill shared memory");
  const dim3 grid(static_cast<unsigned>((s.n + kRows - 1) / kRows), static_cast<unsigned>(s.heads));
  kernel<<<grid, kWarps * 32, bytes, stream>>>(static_cast<const __nv_bfloat16*>(q),
                                               static_cast<const __nv_bfloat16*>(k),
                                               static_cast<const __nv_bfloat16*>(v),
                                               static_cast<__nv_bfloat16*>(out), s);
}

}  // namespace

void attention_prefill(const void* q, const void* k, const void* v, void* out, const AttentionShape& s,
                       CUstream_st* stream) {
  check_attention_shape(s, "attention_prefill");
  if (s.head_dim <= 32) launch<1>(q, k, v, out, s, stream);
  else if (s.head_dim <= 64) launch<2>(q, k, v, out, s, stream);
  else if (s.head_dim <= 128) launch<4>(q, k, v, out, s, stream);
  else launch<8>(q, k, v, out, s, stream);
  check_launch("attention_prefill");
}

}  // namespace afq::cuda
