// Decode attention: one query row per head against the KV cache. The keys are cut into chunks,
// one block per (head, chunk), so that a long cache fills the GPU; each block leaves its partial
// softmax (max, sum, weighted values) in scratch and a second kernel merges them per head. A
// batch of sequences (one query row each, its own cache and position) adds a grid dimension.
#include <cuda_bf16.h>

#include <cmath>

#include "afq/cuda_ops.h"
#include "src/cuda/attention_shape.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

constexpr int kWarps = 4;

// A block's result: partial[((row * heads + head) * splits + split) * (head_dim + 2)] =
// {max, sum, values[head_dim]}, row = blockIdx.z the sequence (its query at q + row * q_stride,
// its cache slot_stride elements after the previous row's, its position device_positions[row]).
// Lane l of a warp holds dims l, l + 32, ... (DimsPerLane of them, head_dim <= 32 * DimsPerLane).
template <int DimsPerLane>
__global__ void __launch_bounds__(kWarps * 32)
    attention_decode_kernel(const __nv_bfloat16* q, int64_t q_stride, const __nv_bfloat16* k, const __nv_bfloat16* v,
                            int64_t slot_stride, float* partial, AttentionShape s, int64_t first, int64_t keys,
                            int64_t chunk, int splits, const int32_t* device_positions) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  __shared__ float max_s[kWarps], sum_s[kWarps];
  const int64_t row = blockIdx.z;
  q += row * q_stride;
  k += row * slot_stride;
  v += row * slot_stride;
  partial += row * s.heads * splits * (s.head_dim + 2);
  // Replayed from a CUDA graph: the keys come from the position on the device, over a fixed
  // number of splits (a split past the last key leaves max -inf, which the merge skips).
  if (device_positions) {
    const int64_t last = device_positions[row];
    first = s.window > 0 ? max(int64_t{0}, last - s.window + 1) : 0;
    keys = last - first + 1;
    chunk = (keys + splits - 1) / splits;
  }
  __shared__ float values_s[kWarps][32 * DimsPerLane];
  const int head = blockIdx.x, split = blockIdx.y, hd = s.head_dim;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t kv_stride = int64_t{s.kv_heads} * hd;
  const int64_t kv_offset = int64_t{head / (s.heads / s.kv_heads)} * hd;
  const int64_t begin = first + split * chunk, end = min(begin + chunk, first + keys);

  float qr[DimsPerLane], acc[DimsPerLane];
#pragma unroll
  for (int i = 0; i < DimsPerLane; ++i) {
    const int d = lane + 32 * i;
    qr[i] = d < hd ? to_float(q[int64_t{head} * hd + d]) : 0.f;
    acc[i] = 0.f;
  }
  // Online softmax over this warp's keys (every kWarps-th of the chunk).
  float m = -INFINITY, l = 0.f;
  for (int64_t key = begin + warp; key < end; key += kWarps) {
    const __nv_bfloat16* kr = k + key * kv_stride + kv_offset;
    const __nv_bfloat16* vr = v + key * kv_stride + kv_offset;
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < DimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) dot += qr[i] * to_float(kr[d]);
    }
    const float score = warp_sum(dot) * s.scale;
    const float m_new = fmaxf(m, score);
    const float correction = expf(m - m_new), p = expf(score - m_new);  // m = -inf at first: correction 0
    l = l * correction + p;
#pragma unroll
    for (int i = 0; i < DimsPerLane; ++i) {
      const int d = lane + 32 * i;
      acc[i] = acc[i] * correction + (d < hd ? p * to_float(vr[d]) : 0.f);
    }
    m = m_new;
  }
  if (lane == 0) {
    max_s[warp] = m;
    sum_s[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < DimsPerLane; ++i) values_s[warp][lane + 32 * i] = acc[i];
  __syncthreads();

  // Merge the warps; a warp without keys has max -inf and contributes nothing.
  float block_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, max_s[w]);
  float* out = partial + (int64_t{head} * splits + split) * (hd + 2);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float value = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (max_s[w] != -INFINITY) value += values_s[w][d] * expf(max_s[w] - block_max);
    out[2 + d] = value;
  }
  if (threadIdx.x == 0) {
    float sum = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (max_s[w] != -INFINITY) sum += sum_s[w] * expf(max_s[w] - block_max);
    out[0] = block_max;
    out[1] = sum;
  }
}

// One block per (head, row), one thread per dim: the chunks' partial softmaxes rescaled to the
// common max.
__global__ void attention_merge_kernel(const float* partial, __nv_bfloat16* out, int head_dim, int splits) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  const int head = blockIdx.x + blockIdx.y * gridDim.x, d = threadIdx.x;  // row-major over (row, head)
  if (d >= head_dim) return;
  const int64_t stride = head_dim + 2;
  const float* p = partial + int64_t{head} * splits * stride;
  float max_all = -INFINITY;
  for (int s = 0; s < splits; ++s) max_all = fmaxf(max_all, p[s * stride]);
  float sum = 0.f, value = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float m = p[s * stride];
    if (m == -INFINITY) continue;
    const float w = expf(m - max_all);
    sum += p[s * stride + 1] * w;
    value += p[s * stride + 2 + d] * w;
  }
  out[int64_t{head} * head_dim + d] = from_float<__nv_bfloat16>(value / sum);
}

// Where the rows of a launch are: q_stride and slot_stride elements apart (0 and 0 for one row).
struct Rows {
  int64_t count = 1, q_stride = 0, slot_stride = 0;
};

template <int DimsPerLane>
void launch(const void* q, const void* k, const void* v, float* scratch, const AttentionShape& s, Rows rows,
            int64_t first, int64_t keys, int64_t chunk, int splits, const int32_t* device_positions,
            cudaStream_t stream) {
  check_cuda(
      launch_dependent(attention_decode_kernel<DimsPerLane>, dim3(s.heads, splits, static_cast<unsigned>(rows.count)),
                       dim3(kWarps * 32), 0, stream, device_compute_capability(), static_cast<const __nv_bfloat16*>(q),
                       rows.q_stride, static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v),
                       rows.slot_stride, scratch, s, first, keys, chunk, splits, device_positions),
      "attention_decode_kernel launch");
}

void launch_decode(const void* q, const void* k, const void* v, void* out, const AttentionShape& s, Rows rows,
                   int64_t first, int64_t keys, int64_t chunk, int splits, const int32_t* device_positions,
                   float* scratch, cudaStream_t stream) {
  if (s.head_dim <= 32)
    launch<1>(q, k, v, scratch, s, rows, first, keys, chunk, splits, device_positions, stream);
  else if (s.head_dim <= 64)
    launch<2>(q, k, v, scratch, s, rows, first, keys, chunk, splits, device_positions, stream);
  else if (s.head_dim <= 128)
    launch<4>(q, k, v, scratch, s, rows, first, keys, chunk, splits, device_positions, stream);
  else
    launch<8>(q, k, v, scratch, s, rows, first, keys, chunk, splits, device_positions, stream);
  const int threads = (s.head_dim + 31) / 32 * 32;
  check_cuda(launch_dependent(attention_merge_kernel, dim3(s.heads, static_cast<unsigned>(rows.count)), dim3(threads),
                              0, stream, device_compute_capability(), scratch, static_cast<__nv_bfloat16*>(out),
                              s.head_dim, splits),
             "attention_merge_kernel launch");
}

}  // namespace

void attention_decode(const void* q, const void* k, const void* v, void* out, const AttentionShape& s,
                      float* scratch, CUstream_st* stream) {
  check_attention_shape(s, "attention_decode");
  if (s.n != 1) throw Error("[attention_decode] takes one query row (" + describe(s) + ")");
  const int64_t last = s.position;
  const int64_t first = s.window > 0 ? std::max<int64_t>(0, last - s.window + 1) : 0;
  const int64_t keys = last - first + 1;
  int64_t splits = decode_splits(keys, s.heads, current_device_info().multiprocessors);
  const int64_t chunk = (keys + splits - 1) / splits;
  splits = (keys + chunk - 1) / chunk;  // no empty chunk
  launch_decode(q, k, v, out, s, Rows{}, first, keys, chunk, static_cast<int>(splits), nullptr, scratch, stream);
}

void attention_decode_at(const void* q, const void* k, const void* v, void* out, const AttentionShape& s,
                         const int32_t* position, int64_t max_keys, float* scratch, CUstream_st* stream) {
  if (s.n != 1)
    throw Error("[attention_decode_at] takes one query row (" + describe(s) + "); attention_decode_batch takes more");
  attention_decode_batch(q, 0, k, v, 0, out, s, position, max_keys, scratch, stream);
}

void attention_decode_batch(const void* q, int64_t q_stride, const void* k, const void* v, int64_t slot_stride,
                            void* out, const AttentionShape& s, const int32_t* positions, int64_t max_keys,
                            float* scratch, CUstream_st* stream) {
  check_attention_shape(s, "attention_decode_batch");
  if (!positions || max_keys < 1 || s.n > 65535 || q_stride < 0 || slot_stride < 0)
    throw Error("[attention_decode_batch] takes 1 to 65535 rows, device positions, max_keys >= 1 and strides >= 0 (" +
                describe(s) + " max_keys=" + std::to_string(max_keys) + ")");
  // As many splits as the longest cache would get, so that one launch shape serves every step
  // (and the scratch that attention_scratch_floats sizes per row holds them).
  const int64_t keys = s.window > 0 ? std::min<int64_t>(max_keys, s.window) : max_keys;
  const int splits = static_cast<int>(decode_splits(keys, s.heads, current_device_info().multiprocessors));
  launch_decode(q, k, v, out, s, Rows{s.n, q_stride, slot_stride}, 0, 0, 0, splits, positions, scratch, stream);
}

}  // namespace afq::cuda
