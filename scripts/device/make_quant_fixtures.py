#!/usr/bin/env python3
"""Random parity cases from the installed transformers' own affine quantizer, for
tests/data/transformers_random/ (run on the GPU machine, which has transformers; the work is CPU-only).

Writes $OUT/transformers_random.safetensors:
  input.<dtype>.<kind>              the float weight, shared by every bits / group size
  b<bits>_g<group>.<dtype>.<kind>.weight    uint32 words stored as I32 (safetensors has no U32 in torch)
                                 .scales   in the weight dtype, as MetalQuantize stores them
                                 .qbiases  likewise
                                 .dequant  _affine_dequantize_tensor(...).to(dtype), as MetalDequantize returns it
and $OUT/metal_quantization.py (the module's source, for the record, not for the repository).
Prints the module's names, the quantize / dequantize sources and a few probes of edge behaviour.
"""
import inspect
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers.integrations import metal_quantization as mq

out = os.environ.get("OUT", ".")
g = torch.Generator().manual_seed(20261124)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def ties(rows, cols, huge_ok):
    # Each row: min 0, max n * 2^-e with n = 15, values on half steps, so (w - min) / scale lands
    # exactly on .5 for 4 bits (and often for 2 and 8 bits): round half to even is exercised.
    w = (torch.randint(0, 31, (rows, cols), generator=g).float() * 0.5) * 2.0**-4
    w[:, ::32] = 0.0
    w[:, 1::32] = 15 * 2.0**-4
    return w


def mixed(rows, cols, huge_ok):
    # Row by row: constant, tiny, all negative, all positive, huge (f16: near its largest), 1e-9,
    # signed zeros, one outlier per group of 64.
    w = torch.randn(8, cols, generator=g) * 0.02
    w[0] = 0.25
    w[1] = torch.rand(cols, generator=g) * 1e-6
    w[2] = -torch.rand(cols, generator=g) - 0.1
    w[3] = torch.rand(cols, generator=g) + 0.5
    w[4] = torch.randn(cols, generator=g) * 1e30 if huge_ok else (torch.randn(cols, generator=g) * 2e4).clamp(-6e4, 6e4)
    w[5] = torch.randn(cols, generator=g) * 1e-9
    w[6] = torch.where(torch.rand(cols, generator=g) < 0.5, 0.0, -0.0)
    w[7] = torch.randn(cols, generator=g) * 1e-3
    w[7, 5::64] = 3.0
    return w


def many_rows(rows, cols, huge_ok):
    # 48 rows, each with its own magnitude from 1e-4 to 1e2.
    mags = 10.0 ** (torch.rand(rows, 1, generator=g) * 6 - 4)
    return torch.randn(rows, cols, generator=g) * mags


def normal(rows, cols, huge_ok):
    return torch.randn(rows, cols, generator=g) * 0.02


def outliers(rows, cols, huge_ok):
    w = torch.randn(rows, cols, generator=g) * 0.01
    idx = torch.randint(0, cols, (rows, 3), generator=g)
    w.scatter_(1, idx, torch.randn(rows, 3, generator=g) * 0.5)
    return w


KINDS = {"normal": (normal, 4, 256), "outliers": (outliers, 4, 256), "ties": (ties, 4, 256),
         "mixed": (mixed, 8, 256), "many_rows": (many_rows, 48, 128)}

print("dir(metal_quantization):", [n for n in dir(mq) if not n.startswith("__")])
for fn in ("_affine_quantize_tensor", "_affine_dequantize_tensor"):
    print(inspect.getsource(getattr(mq, fn)))
print(inspect.getsource(mq.MetalQuantize.convert))
print(inspect.getsource(mq.MetalDequantize.convert))

tensors = {}
inputs = {}
for dname, dtype in DTYPES.items():
    for kind, (make, rows, cols) in KINDS.items():
        w = make(rows, cols, dtype != torch.float16).to(dtype).contiguous()
        inputs[(dname, kind)] = w
        tensors[f"input.{dname}.{kind}"] = w

native_differs = {}
for bits in (2, 4, 8):
    for group in (32, 64, 128):
        for (dname, kind), w in inputs.items():
            dtype = DTYPES[dname]
            words, scales, biases = mq._affine_quantize_tensor(w, group, bits)
            s, b = scales.to(dtype), biases.to(dtype)
            deq = mq._affine_dequantize_tensor(words, s, b, group, bits).to(dtype)
            name = f"b{bits}_g{group}.{dname}.{kind}"
            tensors[name + ".weight"] = words.view(torch.int32).contiguous()
            tensors[name + ".scales"] = s.contiguous()
            tensors[name + ".qbiases"] = b.contiguous()
            tensors[name + ".dequant"] = deq.contiguous()
            if dtype != torch.float32:  # would arithmetic in the weight dtype give the same?
                q = mq._affine_dequantize_tensor(words, torch.ones_like(scales), torch.zeros_like(biases), group, bits)
                n_rows = q.shape[0]
                native = (q.to(dtype).reshape(n_rows, -1, group) * s.unsqueeze(-1) + b.unsqueeze(-1)).reshape(n_rows, -1)
                native_differs[dname] = native_differs.get(dname, 0) + int((native.view(torch.int16) != deq.view(torch.int16)).sum())

save_file(tensors, os.path.join(out, "transformers_random.safetensors"),
          metadata={"transformers": transformers.__version__, "torch": torch.__version__})
with open(os.path.join(out, "metal_quantization.py"), "w") as f:
    f.write(inspect.getsource(mq))

print("elements where dequantizing in the weight dtype's own arithmetic differs from .dequant:", native_differs)
# Probes, printed only: a range that overflows float32, and groups of signed zeros.
for label, row in (("overflow", [3e38, -3e38] * 16), ("zeros", [0.0, -0.0] * 16), ("negzeros", [-0.0, 0.0] * 16)):
    words, scales, biases = mq._affine_quantize_tensor(torch.tensor([row]), 32, 4)
    print(label, "words", [hex(int(x)) for x in words.view(torch.int32)[0, :2]], "scale", scales.tolist(),
          "bias", biases.tolist(), "bias sign bit", torch.signbit(biases).tolist())
print("cases:", sum(k.endswith(".scales") for k in tensors), "transformers", transformers.__version__,
      "torch", torch.__version__, "bytes", os.path.getsize(os.path.join(out, "transformers_random.safetensors")))
