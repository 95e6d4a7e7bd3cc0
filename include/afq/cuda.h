// CUDA kernels for y = x @ dequant(W)^T (+ bias) on NVIDIA GPUs (Ampere sm_80 and Hopper sm_90).
// This header declares host functions only, so it compiles without the CUDA toolkit; in a build
// without CUDA (AFQ_HAVE_CUDA undefined) only cuda_available() exists and returns false.
#pragma once

#include <cstdint>
#include <memory>

#include "afq/dtype.h"
#include "afq/quant.h"
#include "afq/tensor.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; nullptr is the default stream

namespace afq::cuda {

#ifndef AFQ_HAVE_CUDA
inline bool cuda_available() { return false; }
#else
// True when a CUDA device can be used.
bool cuda_available();

// A quantized linear weight resident on the device, uploaded once at load in the checkpoint's
// own layout (the kernels read it as it is stored on disk).
struct DeviceQuantizedWeight {
  const uint32_t* weight = nullptr;  // [N, K * bits / 32] packed words
  const void* scales = nullptr;      // [N, K / group_size] in scale_dtype
  const void* biases = nullptr;      // [N, K / group_size] in scale_dtype
  DType scale_dtype = DType::BF16;   // BF16, F16 or F32
  int64_t rows = 0;                  // N
  int64_t cols = 0;                  // K
  int bits = 0;
  int group_size = 0;
  std::shared_ptr<void> memory;      // owns the device allocation behind the three pointers

  // Copies the three tensors to the current device (validated first; throws afq::Error).
  static DeviceQuantizedWeight upload(const QuantizedWeight& w);
};

// The raw entry point for a forward pass: every pointer is device memory aligned to 16 bytes.
//   x [m, k] and y [m, n] in x_dtype (BF16 or F16); weight, scales, biases as above;
//   bias [n] in bias_dtype (BF16, F16 or F32) or nullptr.
// Accumulates in float32. Asynchronous on `stream`; throws afq::Error on arguments no kernel
// supports (the message names the whole problem) and on launch failures.
void affine_qmm_t(const void* x, const uint32_t* weight, const void* scales, const void* biases, const void* bias,
                  void* y, int64_t m, int64_t n, int64_t k, int group_size, int bits, DType x_dtype,
                  DType scale_dtype, DType bias_dtype = DType::F32, CUstream_st* stream = nullptr);

// The same with an uploaded weight.
void affine_qmm_t(const void* x, int64_t m, DType x_dtype, const DeviceQuantizedWeight& w, const void* bias,
                  DType bias_dtype, void* y, CUstream_st* stream = nullptr);

// W[rows, k] = scale * q + bias into `out` (device memory, [rows, k] in out_dtype: BF16, F16 or
// F32), computed in float32 and rounded once, like afq::dequantize on the CPU. Asynchronous.
void affine_dequantize(const uint32_t* weight, const void* scales, const void* biases, void* out, int64_t rows,
                       int64_t k, int group_size, int bits, DType scale_dtype, DType out_dtype,
                       CUstream_st* stream = nullptr);

// afq::quantize computed on the device, for quantizing on load: host tensor in, host
// QuantizedWeight out (uploads, runs, waits, downloads), bit-exact with the CPU's. A weight the
// CPU rejects (shape, dtype, NaN or Inf) gets the CPU's error.
QuantizedWeight quantize(const Tensor& w, int bits, int group_size, QuantMethod method);

// Host tensors in and out (uploads, runs, waits, downloads): for tests and one-off use.
// x is BF16 or F16 of shape [..., K]; y has x's dtype and leading shape, and N.
Tensor affine_qmm_t(const Tensor& x, const QuantizedWeight& w, const Tensor* bias = nullptr);

#endif  // AFQ_HAVE_CUDA

}  // namespace afq::cuda
