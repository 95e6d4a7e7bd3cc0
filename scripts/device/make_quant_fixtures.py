#!/usr/bin/env python3
"""Random parity cases from transformers' own affine quantizer (the installed version), for
tests/data/transformers_random/. Writes $OUT/transformers_random.safetensors with, per case:
  <case>.input (the float weight), <case>.weight (uint32 words as I32), <case>.scales, <case>.qbiases,
  <case>.dequant (transformers' _affine_dequantize_tensor, cast to the weight dtype as MetalDequantize does)
and $OUT/metal_quantization.py, the source that produced them.
"""
import inspect
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers.integrations import metal_quantization as mq

out = os.environ.get("OUT", ".")
g = torch.Generator().manual_seed(1234)


def weights(kind, rows, cols):
    if kind == "normal":
        return torch.randn(rows, cols, generator=g) * 0.02
    if kind == "outliers":  # heavy tails: a few large values per row
        w = torch.randn(rows, cols, generator=g) * 0.01
        idx = torch.randint(0, cols, (rows, 3), generator=g)
        w.scatter_(1, idx, torch.randn(rows, 3, generator=g) * 0.5)
        return w
    if kind == "grid":  # values on a coarse grid, so (w - bias) / scale lands on ties
        return torch.randint(-8, 9, (rows, cols), generator=g).float() * 0.125
    if kind == "mixed":  # constant groups, tiny groups, one-sided groups
        w = torch.randn(rows, cols, generator=g) * 0.02
        w[0] = 0.25
        w[1] = torch.rand(cols, generator=g) * 1e-6
        w[2] = -torch.rand(cols, generator=g)
        w[3] = torch.rand(cols, generator=g) + 0.5
        return w
    raise ValueError(kind)


tensors = {}
for bits in (2, 4, 8):
    for group in (32, 64, 128):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for kind in ("normal", "outliers", "grid", "mixed"):
                name = f"b{bits}_g{group}_{str(dtype).split('.')[-1]}_{kind}"
                w = weights(kind, 8, 256).to(dtype)
                words, scales, biases = mq._affine_quantize_tensor(w, group, bits)
                deq = mq._affine_dequantize_tensor(words, scales.to(dtype), biases.to(dtype), group, bits)
                tensors[name + ".input"] = w.contiguous()
                tensors[name + ".weight"] = words.view(torch.int32).contiguous()
                tensors[name + ".scales"] = scales.to(dtype).contiguous()
                tensors[name + ".qbiases"] = biases.to(dtype).contiguous()
                tensors[name + ".dequant"] = deq.to(dtype).contiguous()

save_file(tensors, os.path.join(out, "transformers_random.safetensors"),
          metadata={"transformers": transformers.__version__, "torch": torch.__version__})
with open(os.path.join(out, "metal_quantization.py"), "w") as f:
    f.write(inspect.getsource(mq))
print("cases:", len(tensors) // 5, "transformers", transformers.__version__)
