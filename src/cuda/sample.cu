// Sampling on the device: each row's next token drawn from softmax(logits / temperature) over the
// candidates that top-k, min-p and top-p leave, at a uniform number the host draws, so that a seed
// reproduces the text and only the token ids come back. One block per row (a vocabulary of 128k
// is a few L2-resident passes for one SM). The thresholds are found by radix selection over the
// logits' order-preserving bit patterns, 8 bits a pass: top-k by counts, top-p by masses. Masses
// are fixed-point integers (w * 2^40, w = exp((logit - max) / T) <= 1), summed exactly in any
// order, so the same inputs always draw the same token. The draw inverts the candidates'
// cumulative mass in token order (afq::sample_in_token_order is the same rule on the host).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <string>

#include "afq/cuda_ops.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr float kMassScale = 1099511627776.0f;  // 2^40: 2^23 tokens of mass 1 still fit in 64 bits
constexpr int64_t kMaxTokens = int64_t{1} << 23;

// Larger floats give larger keys; NaN gets 0, below every number, and never a mass.
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t bits = __float_as_uint(v);
  if (v != v) return 0;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

struct RowView {
  float max;  // the largest logit
  float inv_temperature;
  float min_p;         // 0: off
  uint32_t floor_key;  // candidates have keys >= floor_key (top-k's and top-p's thresholds)
};

__device__ __forceinline__ float weight(float v, const RowView& r) {
  return v != v ? 0.f : expf((v - r.max) * r.inv_temperature);
}

// Whether the token of logit v (key k) is a candidate, and its fixed-point mass.
__device__ __forceinline__ bool candidate(float v, uint32_t k, const RowView& r, unsigned long long* mass) {
  if (k < r.floor_key || k == 0) return false;
  const float w = weight(v, r);
  if (r.min_p > 0.f && w < r.min_p) return false;
  *mass = static_cast<unsigned long long>(w * kMassScale);
  return true;
}

// Calls f(i, v, valid) for the values of row [0, n) this thread takes: kLoads of them loaded
// before any is used, so that a pass costs a memory latency per kLoads values, not per value
// (the row comes from L2). Every thread of the block makes the same calls (valid false past n),
// so f may use warp-synchronous intrinsics; threads take elements blockDim.x apart.
constexpr int kLoads = 8;

template <class T, class F>
__device__ __forceinline__ void for_each_value(const T* row, int64_t n, F&& f) {
  for (int64_t base = 0; base < n; base += int64_t{kLoads} * blockDim.x) {
    float v[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int64_t i = base + int64_t{j} * blockDim.x + threadIdx.x;
      v[j] = i < n ? to_float(row[i]) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int64_t i = base + int64_t{j} * blockDim.x + threadIdx.x;
      f(i, v[j], i < n);
    }
  }
}

// Sum over the block of a 64-bit value, returned to every thread; `shared` holds 32 of them.
__device__ __forceinline__ unsigned long long block_sum_u64(unsigned long long v, unsigned long long* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < blockDim.x / 32 ? shared[lane] : 0ull;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

// The largest key t such that the candidates with keys >= t reach `target`: in count (ByMass
// false) or in mass. Keys fewer or lighter than the target: the lowest candidate key's prefix.
template <bool ByMass, class T>
__device__ uint32_t radix_select(const T* row, int64_t n, const RowView& r, unsigned long long target,
                                 unsigned long long* histogram, uint32_t* chosen) {
  uint32_t prefix = 0, mask = 0;
  unsigned long long above = 0;  // count or mass of the candidates above the current prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    // Neighbouring logits share their high bits: most of a pass lands in a few bins, and 32
    // lanes adding to one shared counter would serialize. The lanes of a warp that share a bin
    // add together first (exactly: a mass < 2^41 is summed as two 20-bit halves), one atomic each.
    for_each_value(row, n, [&](int64_t, float v, bool valid) {
      uint32_t bin = 256;  // none
      unsigned long long mass = 0;
      if (valid) {
        const uint32_t k = order_key(v);
        if ((k & mask) == prefix && candidate(v, k, r, &mass)) bin = (k >> shift) & 255u;
      }
      const unsigned group = __match_any_sync(0xFFFFFFFFu, bin);
      if (bin == 256) return;
      unsigned long long add = __popc(group);
      if (ByMass) {
        const unsigned high = __reduce_add_sync(group, static_cast<unsigned>(mass >> 20));
        const unsigned low = __reduce_add_sync(group, static_cast<unsigned>(mass & 0xFFFFFu));
        add = (static_cast<unsigned long long>(high) << 20) + low;
      }
      if (threadIdx.x % 32 == static_cast<unsigned>(__ffs(group) - 1)) atomicAdd(&histogram[bin], add);
    });
    __syncthreads();
    if (threadIdx.x == 0) {
      uint32_t digit = 0;
      for (int d = 255; d >= 0; --d) {
        if (above + histogram[d] >= target) {
          digit = static_cast<uint32_t>(d);
          break;
        }
        above += histogram[d];
      }
      *chosen = digit;
    }
    __syncthreads();
    prefix |= *chosen << shift;
    mask |= 255u << shift;
    __syncthreads();  // every thread has read *chosen before the next pass writes it
  }
  return prefix;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const T* values, int64_t n, const DeviceSampling* params, const float* uniforms, int32_t* out) {
  allow_dependent_launch();
  wait_for_prior_kernel();
  __shared__ unsigned long long histogram[256], sums[32];
  __shared__ float best_values[32];
  __shared__ int32_t best_indices[32];
  __shared__ uint32_t chosen;
  __shared__ int32_t drawn;
  const T* row = values + blockIdx.x * n;
  const DeviceSampling p = *params;

  // The largest logit (and its lowest index: the greedy token).
  float best = -INFINITY;
  int32_t best_i = INT_MAX;
  for_each_value(row, n, [&](int64_t i, float v, bool valid) {
    if (valid && v > best) {  // ascending i per thread: the first of equals stays
      best = v;
      best_i = static_cast<int32_t>(i);
    }
  });
  for (int offset = 16; offset > 0; offset /= 2) {
    const float v = __shfl_xor_sync(0xFFFFFFFFu, best, offset);
    const int32_t i = __shfl_xor_sync(0xFFFFFFFFu, best_i, offset);
    if (v > best || (v == best && i < best_i)) {
      best = v;
      best_i = i;
    }
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    best_values[warp] = best;
    best_indices[warp] = best_i;
  }
  __syncthreads();
  best = best_values[0];
  best_i = best_indices[0];
  for (int w = 1; w < blockDim.x / 32; ++w)
    if (best_values[w] > best || (best_values[w] == best && best_indices[w] < best_i)) {
      best = best_values[w];
      best_i = best_indices[w];
    }
  const float inv_temperature = p.temperature > 0.f ? 1.f / p.temperature : INFINITY;
  if (!isfinite(best) || !isfinite(inv_temperature)) {  // greedy, or no finite largest logit
    if (threadIdx.x == 0) out[blockIdx.x] = best_i == INT_MAX ? 0 : best_i;
    return;
  }

  RowView r{best, inv_temperature, p.min_p, 1u};
  if (p.top_k > 0 && p.top_k < n)
    r.floor_key = radix_select<false>(row, n, r, static_cast<unsigned long long>(p.top_k), histogram, &chosen);
  if (p.top_p < 1.f) {
    unsigned long long total = 0, mass;
    for_each_value(row, n, [&](int64_t, float v, bool valid) {
      if (valid && candidate(v, order_key(v), r, &mass)) total += mass;
    });
    total = block_sum_u64(total, sums);
    const auto target =
        static_cast<unsigned long long>(ceil(static_cast<double>(p.top_p) * static_cast<double>(total)));
    r.floor_key = max(r.floor_key, radix_select<true>(row, n, r, max(target, 1ull), histogram, &chosen));
  }

  // The draw, in token order: each warp a contiguous stretch of the vocabulary (read a row of 32
  // tokens at a time, coalesced), the warps' masses scanned, then the warp that holds the target
  // walks its stretch row by row.
  const int warps = blockDim.x / 32;
  const int64_t stretch = (n + warps - 1) / warps;
  const int64_t begin = min(n, warp * stretch), end = min(n, begin + stretch);
  unsigned long long own = 0, mass;
  for (int64_t base = begin; base < end; base += 32 * kLoads) {
    float v[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int64_t i = base + 32 * j + lane;
      v[j] = i < end ? to_float(row[i]) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
      if (base + 32 * j + lane < end && candidate(v[j], order_key(v[j]), r, &mass)) own += mass;
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) own += __shfl_xor_sync(0xFFFFFFFFu, own, offset);
  __syncthreads();  // sums may still be read by the top-p pass above
  if (lane == 0) sums[warp] = own;
  if (threadIdx.x == 0) drawn = best_i;  // if rounding leaves no stretch holding the target
  __syncthreads();
  unsigned long long start = 0, total = 0;
  for (int w = 0; w < warps; ++w) {
    if (w < warp) start += sums[w];
    total += sums[w];
  }
  unsigned long long target = static_cast<unsigned long long>(static_cast<double>(uniforms[blockIdx.x]) * total);
  if (target >= total) target = total - 1;                   // total >= 2^40: the best token is a candidate of mass 1
  if (own > 0 && start <= target && target < start + own) {  // one warp, all its lanes
    unsigned long long cumulative = start;
    bool found = false;
    for (int64_t base = begin; base < end && !found; base += 32 * kLoads) {
      float v[kLoads];
#pragma unroll
      for (int j = 0; j < kLoads; ++j) {
        const int64_t i = base + 32 * j + lane;
        v[j] = i < end ? to_float(row[i]) : 0.f;
      }
#pragma unroll
      for (int j = 0; j < kLoads; ++j) {
        if (found) break;  // the same for every lane
        const int64_t i = base + 32 * j + lane;
        unsigned long long m = 0;
        if (i >= end || !candidate(v[j], order_key(v[j]), r, &m)) m = 0;
        unsigned long long inclusive = m;  // scan of the row's masses over the lanes
#pragma unroll
        for (int offset = 1; offset < 32; offset *= 2) {
          const unsigned long long up = __shfl_up_sync(0xFFFFFFFFu, inclusive, offset);
          if (lane >= offset) inclusive += up;
        }
        const unsigned passed = __ballot_sync(0xFFFFFFFFu, m > 0 && cumulative + inclusive > target);
        if (passed) {
          if (lane == __ffs(passed) - 1) drawn = static_cast<int32_t>(i);
          found = true;
        }
        cumulative += __shfl_sync(0xFFFFFFFFu, inclusive, 31);
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = drawn;
}

template <class T>
void launch(const void* values, int64_t rows, int64_t n, const DeviceSampling* params, const float* uniforms,
            int32_t* out, CUstream_st* stream) {
  check_cuda(launch_dependent(sample_kernel<T>, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream,
                              device_compute_capability(), static_cast<const T*>(values), n, params, uniforms, out),
             "sample_kernel launch");
}

}  // namespace

void sample_rows(const void* values, DType dtype, int64_t rows, int64_t n, const DeviceSampling* params,
                 const float* uniforms, int32_t* out, CUstream_st* stream) {
  if (n < 1 || n > kMaxTokens || rows < 1 || rows > INT_MAX || !params || !uniforms)
    throw Error("[sample_rows] rows=" + std::to_string(rows) + " n=" + std::to_string(n) +
                " not allowed: at least one row of 1 to 2^23 values, with parameters and uniforms");
  switch (dtype) {
    case DType::F32:
      return launch<float>(values, rows, n, params, uniforms, out, stream);
    case DType::F16:
      return launch<__half>(values, rows, n, params, uniforms, out, stream);
    case DType::BF16:
      return launch<__nv_bfloat16>(values, rows, n, params, uniforms, out, stream);
    default:
      throw Error(dtype_list_error("sample_rows", "values", dtype, "F32, F16, BF16"));
  }
}

}  // namespace afq::cuda
