// Large-M GEMM: dequantize W slice by slice into a scratch buffer in x's dtype, and multiply
// each slice with cuBLAS. Once M is in the hundreds the product's arithmetic dwarfs writing and
// re-reading the float slice, and cuBLAS's tensor-core GEMM is hard to beat.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "afq/cuda.h"
#include "afq/error.h"
#include "src/cuda/dequant.cuh"
#include "src/cuda/qmm.h"
#include "src/cuda/stream_scratch.h"

namespace afq::cuda {
namespace {

// Scratch for one slice of the dequantized weight: big enough that each slice's GEMM still
// fills the GPU, small enough to stay out of the way of the model's own memory.
constexpr int64_t kSliceBytes = int64_t{64} << 20;

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(std::string("[cuda] ") + what + " failed: cuBLAS status " +
                      std::to_string(static_cast<int>(status)));
}

// One cuBLAS handle per host thread and device, created on first use (creation is costly; a
// handle must not be shared by threads that set different streams).
cublasHandle_t cublas_handle() {
  thread_local std::vector<cublasHandle_t> handles;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  if (static_cast<int>(handles.size()) <= device) handles.resize(device + 1, nullptr);
  if (!handles[device]) check_cublas(cublasCreate(&handles[device]), "cublasCreate");
  return handles[device];
}

template <class T>
__global__ void add_bias_kernel(T* y, const void* bias, DType bias_dtype, int64_t m, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = Pair<T>::from_float(static_cast<float>(y[i]) + load_as_float(bias, i % n, bias_dtype));
}

}  // namespace

void qmm_dequant_gemm(const QmmProblem& p) {
  const bool bf16 = p.x_dtype == DType::BF16;
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  const int64_t slice_rows = std::clamp<int64_t>(kSliceBytes / (2 * p.k) / 128 * 128, 128, p.n);
  void* slice =
      stream_scratch_alloc(static_cast<size_t>(slice_rows * p.k * 2), p.stream, "the dequantized weight slice");
  cublasHandle_t handle = cublas_handle();
  check_cublas(cublasSetStream(handle, p.stream), "cublasSetStream");
  const int64_t words_per_row = p.k * p.bits / 32, groups_per_row = p.k / p.group_size;
  const size_t scale_size = dtype_size(p.scale_dtype);
  const float alpha = 1.f, beta = 0.f;
  for (int64_t n0 = 0; n0 < p.n; n0 += slice_rows) {
    const int64_t rows = std::min(slice_rows, p.n - n0);
    affine_dequantize(p.weight + n0 * words_per_row,
                      static_cast<const unsigned char*>(p.scales) + n0 * groups_per_row * scale_size,
                      static_cast<const unsigned char*>(p.biases) + n0 * groups_per_row * scale_size, slice, rows,
                      p.k, p.group_size, p.bits, p.scale_dtype, p.x_dtype, p.stream);
    // Column-major view: y^T[rows, m] (ld n) = slice^T (slice is [k, rows], ld k) x x^T ([k, m], ld k).
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(p.m),
                              static_cast<int>(p.k), &alpha, slice, type, static_cast<int>(p.k), p.x, type,
                              static_cast<int>(p.k), &beta, static_cast<unsigned char*>(p.y) + n0 * 2, type,
                              static_cast<int>(p.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }
  stream_scratch_free(slice, p.stream, "the dequantized weight slice");
  if (p.bias) {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((p.m * p.n + 255) / 256, 4096));
    if (bf16) {
      add_bias_kernel<<<blocks, 256, 0, p.stream>>>(static_cast<__nv_bfloat16*>(p.y), p.bias, p.bias_dtype, p.m, p.n);
    } else {
      add_bias_kernel<<<blocks, 256, 0, p.stream>>>(static_cast<__half*>(p.y), p.bias, p.bias_dtype, p.m, p.n);
    }
    check_cuda(cudaGetLastError(), "bias add launch");
  }
}

}  // namespace afq::cuda
