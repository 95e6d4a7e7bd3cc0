// Internal to src/cuda: the problem every kernel family receives, and the supports_X + X pairs
// the dispatcher (qmm.cpp) chooses among.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "afq/dtype.h"

namespace afq::cuda {

// y[m, n] = x[m, k] @ dequant(W[n, k])^T (+ bias[n]); all pointers are device memory.
struct QmmProblem {
  const void* x;          // [m, k] in x_dtype (BF16 or F16)
  const uint32_t* weight; // [n, k * bits / 32] packed words, rows as stored in the checkpoint
  const void* scales;     // [n, k / group_size] in scale_dtype
  const void* biases;     // [n, k / group_size] in scale_dtype
  const void* bias;       // [n] in bias_dtype, or nullptr
  void* y;                // [m, n] in x_dtype
  int64_t m, n, k;
  int group_size, bits;
  DType x_dtype, scale_dtype, bias_dtype;
  cudaStream_t stream;
  float* partial = nullptr;  // split-K scratch [splits, m, n], set by the GEMM's launcher
};

// "M=1 N=4096 K=14336 bits=4 group_size=64 x=BF16 scales=BF16": for error messages.
std::string describe(const QmmProblem& p);

// Throws afq::Error naming `what` and the CUDA error when `status` is not cudaSuccess.
void check_cuda(cudaError_t status, const char* what);

// Properties of the current device, read once per device.
struct DeviceInfo {
  int compute_capability;  // major * 10 + minor
  int multiprocessors;
  int64_t l2_bytes;
  int shared_bytes_per_block;  // dynamic shared memory a kernel may opt in to
};
const DeviceInfo& current_device_info();

// Lets `kernel` use up to `bytes` of dynamic shared memory on the current device (past 48 KiB a
// kernel has to ask). Asked once per kernel and device: a function-static flag asks on the first
// device only, and the kernel's first launch on another GPU fails.
void allow_shared_memory(const void* kernel, int bytes, const char* what);

// Decode: a GEMV that reads every packed word once (qmv.cuh). Takes any m (in passes of up to
// 8 rows of x), so it is also the path of last resort for shapes the GEMMs do not take.
bool supports_qmv(const QmmProblem& p);
void qmv(const QmmProblem& p);

// Prompts: tensor-core GEMM with mma.sync m16n8k16 and a cp.async pipeline (qmm_sm80.cuh).
bool supports_qmm_sm80(const QmmProblem& p, const DeviceInfo& device);
void qmm_sm80(const QmmProblem& p);

// Few rows of x (M <= 64; the dispatcher sends it 2 to 8): W dequantized in registers straight into mma.sync fragments, read
// once in coalesced 16-byte loads (qmv_mma.cuh). Needs sm_80 and K a multiple of 32..128 by bits.
bool supports_qmv_mma(const QmmProblem& p, const DeviceInfo& device);
void qmv_mma(const QmmProblem& p);

// Decode at 4 and 8 bits, M <= 2 (sm_80+), BF16/F16 scales: x quantized to two int8 digits per block of 32 in
// shared memory, byte dot products (dp4a), W streamed through a cp.async ring (qmv_int8.cuh).
bool supports_qmv_int8(const QmmProblem& p, const DeviceInfo& device);
void qmv_int8(const QmmProblem& p);

// The kernel families, for forcing one (tests, benchmarks).
enum class QmmPath { Auto, Qmv, Int8, Mma, Fused, Dequant };

// Forces `path` on this thread while alive, where the path supports the problem: tests cover
// each family on every shape it takes, not only those the dispatcher sends it.
class ForceQmmPath {
 public:
  explicit ForceQmmPath(QmmPath path);
  ~ForceQmmPath();
  ForceQmmPath(const ForceQmmPath&) = delete;
  ForceQmmPath& operator=(const ForceQmmPath&) = delete;

 private:
  QmmPath previous_;
};

// Large M: dequantize W in slices to x's dtype, multiply each with cuBLAS (qmm_dequant_gemm.cu).
// Takes every valid problem.
void qmm_dequant_gemm(const QmmProblem& p);

// Per bit width, one file each (qmv_b<bits>.cu, qmv_mma_b<bits>.cu, qmm_sm80_b<bits>.cu), so builds run in parallel.
void qmv_bits2(const QmmProblem& p);
void qmv_bits3(const QmmProblem& p);
void qmv_bits4(const QmmProblem& p);
void qmv_bits5(const QmmProblem& p);
void qmv_bits6(const QmmProblem& p);
void qmv_bits8(const QmmProblem& p);
bool qmv_int8_fits_bits4(const QmmProblem& p, const DeviceInfo& device);
bool qmv_int8_fits_bits8(const QmmProblem& p, const DeviceInfo& device);
void qmv_int8_bits4(const QmmProblem& p);
void qmv_int8_bits8(const QmmProblem& p);
void qmv_mma_bits2(const QmmProblem& p);
void qmv_mma_bits3(const QmmProblem& p);
void qmv_mma_bits4(const QmmProblem& p);
void qmv_mma_bits5(const QmmProblem& p);
void qmv_mma_bits6(const QmmProblem& p);
void qmv_mma_bits8(const QmmProblem& p);
void qmm_sm80_bits2(const QmmProblem& p);
void qmm_sm80_bits3(const QmmProblem& p);
void qmm_sm80_bits4(const QmmProblem& p);
void qmm_sm80_bits5(const QmmProblem& p);
void qmm_sm80_bits6(const QmmProblem& p);
void qmm_sm80_bits8(const QmmProblem& p);

}  // namespace afq::cuda
