// RMSNorm (LlamaRMSNorm): y = x / sqrt(mean(x^2) + eps) * weight per row, in float32. Short rows
// (the per-head q/k norms of Qwen3) take one warp each; hidden-size rows one block each.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "afq/cuda_ops.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/ops_common.cuh"

namespace afq::cuda {
namespace {

constexpr int kWarpRowsPerBlock = 8;  // rows of dim <= 256: one warp each
constexpr int kBlockThreads = 256;    // longer rows: one block each

// Each thread reads back only the elements it read before the reduction, so y may alias x.
template <class In, class Out>
__global__ void rms_norm_warp_kernel(const In* x, const float* weight, Out* y, int64_t rows, int dim, float eps) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kWarpRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const In* xr = x + row * dim;
  float sum = 0;
  for (int i = lane; i < dim; i += 32) {
    const float v = to_float(xr[i]);
    sum += v * v;
  }
  sum = warp_sum(sum);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  Out* yr = y + row * dim;
  for (int i = lane; i < dim; i += 32) yr[i] = from_float<Out>(weight[i] * (to_float(xr[i]) * inv));
}

template <class In, class Out>
__global__ void rms_norm_block_kernel(const In* x, const float* weight, Out* y, int dim, float eps) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  __shared__ float shared[32];
  const In* xr = x + blockIdx.x * int64_t{dim};
  float sum = 0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = to_float(xr[i]);
    sum += v * v;
  }
  sum = block_sum(sum, shared);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  Out* yr = y + blockIdx.x * int64_t{dim};
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = from_float<Out>(weight[i] * (to_float(xr[i]) * inv));
}

// x[r] += y[r] (the residual add), then out[r] = RMSNorm(x[r]) * weight: one pass over the row
// for what two kernels did. Each thread reads back only the elements it wrote.
__global__ void add_residual_rms_norm_kernel(float* x, const __nv_bfloat16* y, const float* weight,
                                             __nv_bfloat16* out, int dim, float eps) {
  allow_dependent_launch();  // the next kernel may launch; it waits for this one before its reads
  wait_for_prior_kernel();
  __shared__ float shared[32];
  float* xr = x + blockIdx.x * int64_t{dim};
  const __nv_bfloat16* yr = y + blockIdx.x * int64_t{dim};
  float sum = 0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = xr[i] + to_float(yr[i]);
    xr[i] = v;
    sum += v * v;
  }
  sum = block_sum(sum, shared);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  __nv_bfloat16* o = out + blockIdx.x * int64_t{dim};
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = from_float<__nv_bfloat16>(weight[i] * (xr[i] * inv));
}

template <class In, class Out>
void launch(const void* x, const float* weight, void* y, int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  const In* in = static_cast<const In*>(x);
  Out* out = static_cast<Out*>(y);
  if (dim <= 256) {
    const int64_t blocks = (rows + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock;
    check_cuda(launch_dependent(rms_norm_warp_kernel<In, Out>, dim3(static_cast<unsigned>(blocks)),
                                dim3(32 * kWarpRowsPerBlock), 0, stream, device_compute_capability(), in, weight, out,
                                rows, static_cast<int>(dim), eps),
               "rms_norm_warp_kernel launch");
  } else {
    check_cuda(launch_dependent(rms_norm_block_kernel<In, Out>, dim3(static_cast<unsigned>(rows)), dim3(kBlockThreads),
                                0, stream, device_compute_capability(), in, weight, out, static_cast<int>(dim), eps),
               "rms_norm_block_kernel launch");
  }
  check_launch("rms_norm");
}

template <class In>
void launch_out(DType y_dtype, const void* x, const float* weight, void* y, int64_t rows, int64_t dim, float eps,
                cudaStream_t stream) {
  if (y_dtype == DType::BF16) return launch<In, __nv_bfloat16>(x, weight, y, rows, dim, eps, stream);
  if (y_dtype == DType::F16) return launch<In, __half>(x, weight, y, rows, dim, eps, stream);
  throw Error(dtype_list_error("rms_norm", "y", y_dtype, "BF16, F16"));
}

}  // namespace

void rms_norm(const void* x, DType x_dtype, const float* weight, void* y, DType y_dtype, int64_t rows, int64_t dim,
              float eps, CUstream_st* stream) {
  if (rows < 0 || rows > (int64_t{1} << 31) - 1 || dim < 1 || dim > (1 << 30))
    throw Error("[rms_norm] rows=" + std::to_string(rows) + " dim=" + std::to_string(dim) +
                " not allowed: rows in [0, 2^31), dim in [1, 2^30]");
  if (rows == 0) return;
  if (x_dtype == DType::F32) return launch_out<float>(y_dtype, x, weight, y, rows, dim, eps, stream);
  if (x_dtype == DType::BF16) return launch_out<__nv_bfloat16>(y_dtype, x, weight, y, rows, dim, eps, stream);
  throw Error(dtype_list_error("rms_norm", "x", x_dtype, "F32, BF16"));
}

void add_residual_rms_norm(float* x, const void* y, const float* weight, void* out, int64_t rows, int64_t dim, float eps,
                           CUstream_st* stream) {
  if (rows < 0 || rows > (int64_t{1} << 31) - 1 || dim < 1 || dim > (1 << 30))
    throw Error("[add_residual_rms_norm] rows=" + std::to_string(rows) + " dim=" + std::to_string(dim) +
                " not allowed: rows in [0, 2^31), dim in [1, 2^30]");
  if (rows == 0) return;
  check_cuda(launch_dependent(add_residual_rms_norm_kernel, dim3(static_cast<unsigned>(rows)), dim3(kBlockThreads), 0,
                              stream, device_compute_capability(), x, static_cast<const __nv_bfloat16*>(y), weight,
                              static_cast<__nv_bfloat16*>(out), static_cast<int>(dim), eps),
             "add_residual_rms_norm_kernel launch");
  check_launch("add_residual_rms_norm");
}

}  // namespace afq::cuda
