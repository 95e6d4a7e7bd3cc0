// Rotary position embedding (rotate_half convention) on bf16 heads. The frequencies come from
// the host (afq::rope_inv_freq, the CPU's own table with its llama3 / linear scaling), so the
// two devices rotate by the same angles: angle = position * inv_freq[i], both float32.
#include <cuda_bf16.h>

#include "afq/cuda_ops.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

// Pair (i, i + half) of row head_row (token * heads + head) of x, rotated by the angle of
// position + token, into the same place of y (which may be x).
__device__ __forceinline__ void rotate_pair(const __nv_bfloat16* x, __nv_bfloat16* y, int64_t p, int heads, int half,
                                            int64_t position, const float* inv_freq) {
  const int i = static_cast<int>(p % half);
  const int64_t head_row = p / half;
  const int64_t t = head_row / heads;
  const float angle = __fmul_rn(static_cast<float>(position + t), inv_freq[i]);
  float s, c;
  sincosf(angle, &s, &c);
  const int64_t base = head_row * 2 * half;
  const float a = to_float(x[base + i]), b = to_float(x[base + i + half]);
  y[base + i] = from_float<__nv_bfloat16>(a * c - b * s);
  y[base + i + half] = from_float<__nv_bfloat16>(b * c + a * s);
}

// One thread per pair of one head of one token; y may equal x. With a device position (decode
// steps replayed from a CUDA graph) it replaces `position`, and y moves by y_position_stride
// elements per position (the KV cache row of that position).
__global__ void rope_kernel(const __nv_bfloat16* x, __nv_bfloat16* y, int64_t pairs, int heads, int half,
                            int64_t position, const int32_t* device_position, int64_t y_position_stride,
                            const float* inv_freq) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  if (device_position) {
    position = *device_position;
    y += position * y_position_stride;
  }
  for (int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; p < pairs; p += int64_t{gridDim.x} * blockDim.x)
    rotate_pair(x, y, p, heads, half, position, inv_freq);
}

// Decode tokens' q rotated in place, k rotated into the cache row of their position and v copied
// there: one thread per q pair, then per k pair, then per v element; blockIdx.y is the token
// (row r of q, k, v, at positions[r], in the cache of its sequence, slot_stride elements apart).
__global__ void rope_qk_store_v_kernel(__nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                       int64_t q_stride, int64_t kv_stride, __nv_bfloat16* k_cache,
                                       __nv_bfloat16* v_cache, int64_t slot_stride, int heads, int kv_heads, int half,
                                       const int32_t* positions, const float* inv_freq) {
  allow_dependent_launch();
  wait_for_prior_kernel();
  const int64_t row = blockIdx.y, position = positions[row];
  q += row * q_stride;
  k += row * kv_stride;
  v += row * kv_stride;
  k_cache += row * slot_stride;
  v_cache += row * slot_stride;
  const int64_t q_pairs = int64_t{heads} * half, k_pairs = int64_t{kv_heads} * half, kv_dim = 2 * k_pairs;
  for (int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; p < q_pairs + k_pairs + kv_dim;
       p += int64_t{gridDim.x} * blockDim.x) {
    if (p < q_pairs)
      rotate_pair(q, q, p, heads, half, position, inv_freq);
    else if (p < q_pairs + k_pairs)
      rotate_pair(k, k_cache + position * kv_dim, p - q_pairs, kv_heads, half, position, inv_freq);
    else
      v_cache[position * kv_dim + (p - q_pairs - k_pairs)] = v[p - q_pairs - k_pairs];
  }
}

}  // namespace

void rope(const void* x, void* y, int64_t n, int heads, int head_dim, int64_t position, const float* inv_freq,
          CUstream_st* stream) {
  if (n < 0 || heads < 1 || head_dim < 2 || head_dim % 2 != 0 || position < 0)
    throw Error("[rope] n=" + std::to_string(n) + " heads=" + std::to_string(heads) + " head_dim=" +
                std::to_string(head_dim) + " position=" + std::to_string(position) +
                " not allowed: head_dim must be even and positive, heads positive, n and position >= 0");
  const int64_t pairs = n * heads * (head_dim / 2);
  if (pairs == 0) return;
  check_cuda(
      launch_dependent(rope_kernel, dim3(grid_for(pairs, 256)), dim3(256), 0, stream, device_compute_capability(),
                       static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), pairs, heads, head_dim / 2,
                       position, nullptr, 0, inv_freq),
      "rope_kernel launch");
  check_launch("rope");
}

void rope_at(const void* x, void* y, int64_t y_position_stride, int heads, int head_dim, const int32_t* position,
             const float* inv_freq, CUstream_st* stream) {
  if (heads < 1 || head_dim < 2 || head_dim % 2 != 0 || y_position_stride < 0 || !position)
    throw Error("[rope_at] heads=" + std::to_string(heads) + " head_dim=" + std::to_string(head_dim) +
                " y_position_stride=" + std::to_string(y_position_stride) +
                " not allowed: head_dim must be even and positive, heads positive, the stride >= 0, a position given");
  const int64_t pairs = int64_t{heads} * (head_dim / 2);
  check_cuda(
      launch_dependent(rope_kernel, dim3(grid_for(pairs, 256)), dim3(256), 0, stream, device_compute_capability(),
                       static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), pairs, heads, head_dim / 2,
                       0, position, y_position_stride, inv_freq),
      "rope_kernel launch");
  check_launch("rope_at");
}

void rope_qk_store_v_at(void* q, const void* k, const void* v, void* k_cache, void* v_cache, int heads, int kv_heads,
                        int head_dim, const int32_t* position, const float* inv_freq, CUstream_st* stream) {
  rope_qk_store_v_batch(q, k, v, 1, 0, 0, k_cache, v_cache, 0, heads, kv_heads, head_dim, position, inv_freq, stream);
}

void rope_qk_store_v_batch(void* q, const void* k, const void* v, int64_t rows, int64_t q_stride, int64_t kv_stride,
                           void* k_cache, void* v_cache, int64_t slot_stride, int heads, int kv_heads, int head_dim,
                           const int32_t* positions, const float* inv_freq, CUstream_st* stream) {
  if (heads < 1 || kv_heads < 1 || head_dim < 2 || head_dim % 2 != 0 || !positions || rows < 1 || rows > 65535 ||
      q_stride < 0 || kv_stride < 0 || slot_stride < 0)
    throw Error("[rope_qk_store_v_batch] rows=" + std::to_string(rows) + " heads=" + std::to_string(heads) +
                " kv_heads=" + std::to_string(kv_heads) + " head_dim=" + std::to_string(head_dim) +
                " not allowed: head_dim even and positive, heads positive, 1 to 65535 rows, strides >= 0, positions "
                "given");
  const int64_t threads = int64_t{heads + 3 * kv_heads} * (head_dim / 2);  // q pairs, k pairs, v elements
  check_cuda(launch_dependent(rope_qk_store_v_kernel, dim3(grid_for(threads, 256), static_cast<unsigned>(rows)),
                              dim3(256), 0, stream, device_compute_capability(), static_cast<__nv_bfloat16*>(q),
                              static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v), q_stride,
                              kv_stride, static_cast<__nv_bfloat16*>(k_cache), static_cast<__nv_bfloat16*>(v_cache),
                              slot_stride, heads, kv_heads, head_dim / 2, positions, inv_freq),
             "rope_qk_store_v_kernel launch");
}

}  // namespace afq::cuda
