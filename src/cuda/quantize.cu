// afq::quantize on the GPU, bit-exact with the CPU's (src/quant/quantize.cpp): one thread per
// group scans it in order as the CPU loop does (so ties between 0 and -0 keep the first, as
// torch and MLX), and every float32 operation is one IEEE operation through the _rn intrinsics,
// which nvcc never contracts into an FMA. A group with a non-finite value or span is flagged and
// the host hands the whole weight to the CPU quantizer, which throws its own error message.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <memory>

#include "afq/cuda.h"
#include "afq/error.h"
#include "src/cuda/ops_common.cuh"
#include "src/cuda/qmm.h"

namespace afq::cuda {
namespace {

__device__ __forceinline__ float larger(float a, float b) { return a < b ? b : a; }  // std::max

template <class T>
__global__ void quantize_kernel(const T* w, uint32_t* words, T* scales, T* biases, int64_t groups, int group_size,
                                int bits, bool mlx, int* not_finite) {
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= groups) return;
  const T* v = w + g * group_size;
  float lo = to_float(v[0]), hi = lo;
  bool finite = true;
  for (int i = 0; i < group_size; ++i) {
    const float x = to_float(v[i]);
    finite &= fabsf(x) <= 3.402823466e38f;  // false for NaN too
    lo = x < lo ? x : lo;                   // std::min(lo, x): the first of equal values stays
    hi = hi < x ? x : hi;                   // std::max(hi, x)
  }
  const float span = __fsub_rn(hi, lo);
  if (!finite || !isfinite(span)) {
    atomicExch(not_finite, 1);
    return;
  }
  const float n = static_cast<float>((1 << bits) - 1);
  float scale, bias;
  if (mlx) {  // the edge with the larger magnitude lands on the grid (spec section 3)
    scale = larger(__fdiv_rn(span, n), 1e-7f);
    float edge = hi;
    if (fabsf(lo) > fabsf(hi)) {
      edge = lo;
    } else {
      scale = -scale;
    }
    const float q0 = rintf(__fdiv_rn(edge, scale));
    if (q0 == 0.0f) {
      bias = 0.0f;
    } else {
      scale = __fdiv_rn(edge, q0);
      bias = edge;
    }
  } else {  // transformers' min/max
    scale = larger(__fdiv_rn(span, n), 1e-8f);
    bias = lo;
  }
  // The group's codes fill whole words of the row's bit stream (group_size * bits is a
  // multiple of 32), so each thread packs its own.
  uint32_t* out = words + g * (group_size * bits / 32);
  uint64_t acc = 0;
  int filled = 0, word = 0;
  for (int i = 0; i < group_size; ++i) {
    const float x = fminf(fmaxf(__fdiv_rn(__fsub_rn(to_float(v[i]), bias), scale), -1.0f), n + 1.0f);
    const uint32_t q = static_cast<uint32_t>(fminf(fmaxf(rintf(x), 0.0f), n));
    acc |= uint64_t{q} << filled;
    filled += bits;
    if (filled >= 32) {
      out[word++] = static_cast<uint32_t>(acc);
      acc >>= 32;
      filled -= 32;
    }
  }
  scales[g] = from_float<T>(scale);
  biases[g] = from_float<T>(bias);
}

struct DeviceBytes {
  explicit DeviceBytes(size_t bytes) {
    void* p = nullptr;
    check_cuda(cudaMalloc(&p, bytes == 0 ? 16 : bytes), "cudaMalloc for quantize");
    ptr.reset(p, [](void* q) { cudaFree(q); });
  }
  std::shared_ptr<void> ptr;
};

template <class T>
bool run(const Tensor& w, int bits, int group_size, QuantMethod method, QuantizedWeight& out) {
  const int64_t n = w.dim(0), k = w.dim(1), groups = n * (k / group_size);
  DeviceBytes in(w.nbytes()), words(out.weight.nbytes()), scales(out.scales.nbytes()), biases(out.biases.nbytes()),
      flag(sizeof(int));
  check_cuda(cudaMemcpy(in.ptr.get(), w.bytes(), w.nbytes(), cudaMemcpyHostToDevice), "upload of the weight");
  check_cuda(cudaMemset(flag.ptr.get(), 0, sizeof(int)), "cudaMemset");
  constexpr int kThreads = 256;
  const int64_t blocks = (groups + kThreads - 1) / kThreads;
  quantize_kernel<T><<<static_cast<unsigned>(blocks), kThreads>>>(
      static_cast<const T*>(in.ptr.get()), static_cast<uint32_t*>(words.ptr.get()), static_cast<T*>(scales.ptr.get()),
      static_cast<T*>(biases.ptr.get()), groups, group_size, bits, method == QuantMethod::Mlx,
      static_cast<int*>(flag.ptr.get()));
  check_cuda(cudaGetLastError(), "quantize launch");
  int not_finite = 0;
  check_cuda(cudaMemcpy(&not_finite, flag.ptr.get(), sizeof(int), cudaMemcpyDeviceToHost), "quantize");
  if (not_finite) return false;
  check_cuda(cudaMemcpy(out.weight.mutable_bytes(), words.ptr.get(), out.weight.nbytes(), cudaMemcpyDeviceToHost),
             "download of the packed weight");
  check_cuda(cudaMemcpy(out.scales.mutable_bytes(), scales.ptr.get(), out.scales.nbytes(), cudaMemcpyDeviceToHost),
             "download of the scales");
  check_cuda(cudaMemcpy(out.biases.mutable_bytes(), biases.ptr.get(), out.biases.nbytes(), cudaMemcpyDeviceToHost),
             "download of the biases");
  return true;
}

}  // namespace

QuantizedWeight quantize(const Tensor& w, int bits, int group_size, QuantMethod method) {
  check_bits(bits);
  check_group_size(group_size);
  // Shapes and dtypes the CPU rejects get its message (it validates before any work).
  if (w.ndim() != 2 || (w.dtype() != DType::F32 && w.dtype() != DType::F16 && w.dtype() != DType::BF16) ||
      w.dim(1) % group_size != 0 || w.dim(0) * w.dim(1) / group_size >= (int64_t{1} << 31) * 256)
    return afq::quantize(w, bits, group_size, method);
  const int64_t n = w.dim(0), k = w.dim(1);
  QuantizedWeight out = QuantizedWeight::zeros(n, k, bits, group_size, w.dtype());
  if (n == 0) return out;
  bool done = false;
  if (w.dtype() == DType::BF16)
    done = run<__nv_bfloat16>(w, bits, group_size, method, out);
  else if (w.dtype() == DType::F16)
    done = run<__half>(w, bits, group_size, method, out);
  else
    done = run<float>(w, bits, group_size, method, out);
  return done ? out : afq::quantize(w, bits, group_size, method);  // the CPU names the bad value
}

}  // namespace afq::cuda
