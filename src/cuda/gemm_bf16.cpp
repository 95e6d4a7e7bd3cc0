// The float linear layers on the GPU: weights converted to bf16 at load, multiplied by cuBLAS.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "afq/cuda_ops.h"
#include "afq/error.h"
#include "src/cuda/qmm.h"

namespace afq::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("[gemm_bf16_t] ") + what + " failed: cuBLAS status " + std::to_string(int(status)));
}

// One handle per thread and device, kept for the process: destroying it at exit would race the
// CUDA runtime's own teardown.
cublasHandle_t handle_for_current_device() {
  thread_local std::vector<cublasHandle_t> handles;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  if (static_cast<int>(handles.size()) <= device) handles.resize(device + 1, nullptr);
  if (!handles[device]) check_cublas(cublasCreate(&handles[device]), "cublasCreate");
  return handles[device];
}

}  // namespace

void gemm_bf16_t(const void* x, int64_t m, const void* w, int64_t n, int64_t k, void* y, DType y_dtype,
                 CUstream_st* stream) {
  const int64_t limit = (int64_t{1} << 31) - 1;
  if (m < 0 || n < 1 || k < 1 || m > limit || n > limit || k > limit)
    throw Error("[gemm_bf16_t] M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                " not allowed: M >= 0, N and K >= 1, each below 2^31");
  if (y_dtype != DType::BF16 && y_dtype != DType::F32)
    throw Error("[gemm_bf16_t] y has dtype " + std::string(dtype_name(y_dtype)) + "; allowed: BF16, F32");
  if (m == 0) return;
  cublasHandle_t handle = handle_for_current_device();
  check_cublas(cublasSetStream(handle, stream), "cublasSetStream");
  const float alpha = 1.f, beta = 0.f;
  // cuBLAS is column-major: y^T [n, m] = W^T' [n, k] . x^T [k, m], with W [n, k] row-major read transposed.
  check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                            static_cast<int>(k), &alpha, w, CUDA_R_16BF, static_cast<int>(k), x, CUDA_R_16BF,
                            static_cast<int>(k), &beta, y, y_dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF,
                            static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace afq::cuda
