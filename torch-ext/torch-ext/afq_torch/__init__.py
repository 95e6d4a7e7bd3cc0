"""afq's affine-quantization kernels as PyTorch operators (CPU and CUDA).

The format is MLX's and transformers' MetalConfig: a float weight W [N, K] becomes
  weight  [N, K * bits / 32]   torch.uint32 (or the same words viewed as torch.int32)
  scales  [N, K / group_size]  float32, float16 or bfloat16
  qbiases [N, K / group_size]  the dtype of scales
with w = scales * q + qbiases per group of `group_size` columns (bits 2, 3, 4, 5, 6, 8; group
sizes 32, 64, 128). Operators (torch.ops.afq.* in a local build):
  affine_qmm_t(x, weight, scales, qbiases, group_size, bits) -> y = x @ dequant(W)^T, x's dtype
  affine_quantize(w, group_size, bits, method) -> (weight, scales, qbiases); method "mlx" | "minmax"
  affine_dequantize(weight, scales, qbiases, group_size, bits) -> W in the dtype of scales
Each has a fake implementation, so torch.compile(fullgraph=True) traces them without graph breaks,
and affine_qmm_t has a backward for x (through affine_dequantize; registered in C++, so that
inference pays no Python autograd kernel per call).

`enable_transformers()` makes transformers' MetalConfig models run on these kernels on CUDA and CPU.
"""

import torch

from ._ops import add_op_namespace_prefix, ops

__all__ = [
    "affine_qmm_t",
    "affine_quantize",
    "affine_dequantize",
    "enable_transformers",
    "disable_transformers",
    "ops",
]


def affine_qmm_t(x, weight, scales, qbiases, group_size, bits):
    """y[..., N] = x[..., K] @ dequant(weight)^T; the call transformers' MetalLinear makes."""
    return ops.affine_qmm_t(x, weight, scales, qbiases, group_size, bits)


def affine_quantize(w, group_size=64, bits=4, method="mlx"):
    """(weight uint32, scales, qbiases) of a 2-D float weight; computed on the CPU, returned on w's device."""
    return ops.affine_quantize(w, group_size, bits, method)


def affine_dequantize(weight, scales, qbiases, group_size, bits):
    """W [N, K] = scales * q + qbiases in float32, rounded once to the dtype of scales."""
    return ops.affine_dequantize(weight, scales, qbiases, group_size, bits)


def enable_transformers(**kwargs):
    """See afq_torch.transformers.enable_transformers."""
    from .transformers import enable_transformers as enable

    return enable(**kwargs)


def disable_transformers():
    """See afq_torch.transformers.disable_transformers."""
    from .transformers import disable_transformers as disable

    return disable()


# --- fake (meta) implementations: shapes and dtypes only, for FakeTensor / torch.compile ---------


@torch.library.register_fake(add_op_namespace_prefix("affine_qmm_t"))
def _affine_qmm_t_fake(x, weight, scales, qbiases, group_size, bits):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.register_fake(add_op_namespace_prefix("affine_quantize"))
def _affine_quantize_fake(w, group_size, bits, method):
    n, k = w.shape
    return (
        w.new_empty((n, k * bits // 32), dtype=torch.uint32),
        w.new_empty((n, k // group_size)),
        w.new_empty((n, k // group_size)),
    )


@torch.library.register_fake(add_op_namespace_prefix("affine_dequantize"))
def _affine_dequantize_fake(weight, scales, qbiases, group_size, bits):
    return scales.new_empty((weight.shape[0], weight.shape[1] * 32 // bits))
