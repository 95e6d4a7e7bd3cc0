// afq's kernels as PyTorch operators (namespace `afq` in a local build, the kernel's unique id in a
// kernels-hub build). Shapes follow transformers' MetalConfig layout:
//   x        [..., K]                 float32, float16 or bfloat16
//   weight   [N, K * bits / 32]       torch.uint32 (or the same words viewed as torch.int32)
//   scales   [N, K / group_size]      float32, float16 or bfloat16
//   qbiases  [N, K / group_size]      the dtype of scales
// Every check fails with a RuntimeError that names the operator, the argument and the value.
#pragma once

#include <ATen/core/Tensor.h>
#include <cstdint>
#include <string_view>
#include <tuple>

namespace afq_torch {

// y[..., N] = x[..., K] @ dequant(weight)^T in x's dtype, float32 accumulation.
at::Tensor affine_qmm_t_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scales,
                            const at::Tensor& qbiases, int64_t group_size, int64_t bits);
at::Tensor affine_qmm_t_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scales,
                             const at::Tensor& qbiases, int64_t group_size, int64_t bits);

// (weight uint32 [N, K*bits/32], scales [N, K/group_size], qbiases) of a float w [N, K], scales and
// qbiases in w's dtype; method "mlx" (MLX's rule) or "minmax" (transformers' MetalQuantize). Runs
// on the CPU: a CUDA w is copied to the host and the results back (a load-time operation).
std::tuple<at::Tensor, at::Tensor, at::Tensor> affine_quantize(const at::Tensor& w, int64_t group_size,
                                                               int64_t bits, std::string_view method);

// W [N, K] = scales * q + qbiases in float32, rounded once to the dtype of scales.
at::Tensor affine_dequantize_cpu(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& qbiases,
                                 int64_t group_size, int64_t bits);
at::Tensor affine_dequantize_cuda(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& qbiases,
                                  int64_t group_size, int64_t bits);

}  // namespace afq_torch
