#!/usr/bin/env python3
"""Checks, with transformers itself, that checkpoints written by `afq quantize --layout transformers`
load as MetalConfig models and that their weights are exactly afq's.

Runs on a machine with torch + transformers (no Apple GPU, so transformers dequantizes at load).
Inputs, made beforehand by scripts/device/prepare_transformers_check.sh:
  DIR/<case>/        afq quantize output (transformers layout)
  DIR/<case>-deq/    afq dequantize output of the same checkpoint (float)
  models/tinyshakes-5m (the float original, in the repository)
Writes a JSON report to $OUT/transformers_check.json and prints a summary.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.integrations import metal_quantization as mq

root = sys.argv[1]
original_dir = "models/tinyshakes-5m"
out_dir = os.environ.get("OUT", ".")
torch.manual_seed(0)
prompt = torch.randint(0, 2048, (1, 48))

report = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": {}}
original = load_file(os.path.join(original_dir, "model.safetensors"))

for case in sorted(d for d in os.listdir(root) if not d.endswith("-deq")):
    qdir, ddir = os.path.join(root, case), os.path.join(root, case + "-deq")
    config = json.load(open(os.path.join(qdir, "config.json")))["quantization_config"]
    bits, group = config["bits"], config["group_size"]
    entry = {"bits": bits, "group_size": group}
    try:
        model = AutoModelForCausalLM.from_pretrained(qdir, dtype=torch.bfloat16, device_map="cpu")
    except Exception as e:  # report, then try again asking for the dequantized path explicitly
        entry["load_error"] = repr(e)
        try:
            from transformers import MetalConfig
            model = AutoModelForCausalLM.from_pretrained(
                qdir, dtype=torch.bfloat16, device_map="cpu", quantization_config=MetalConfig(bits=bits, group_size=group, dequantize=True))
            entry["loaded_with"] = "MetalConfig(dequantize=True)"
        except Exception as e2:
            entry["load_error_dequantize"] = repr(e2)
            report["cases"][case] = entry
            continue
    entry["loaded_class"] = type(model.model.layers[0].self_attn.q_proj).__name__
    ours = load_file(os.path.join(qdir, "model.safetensors"))
    ours_deq = load_file(os.path.join(ddir, "model.safetensors"))
    state = model.state_dict()
    equal, total, max_diff = 0, 0, 0.0
    quant_equal = {"words": 0, "scales": 0, "biases": 0}
    for name, w in state.items():
        module = name[: -len(".weight")]
        if not name.endswith(".weight") or module + ".scales" not in ours:
            continue
        total += 1
        # transformers' dequantized weight against afq's dequantize of the same checkpoint.
        ref = ours_deq[name].to(w.dtype)
        equal += int(torch.equal(w.cpu(), ref))
        max_diff = max(max_diff, (w.float().cpu() - ref.float()).abs().max().item())
        # transformers' own quantize of the float original against afq's words/scales/biases.
        words, scales, biases = mq._affine_quantize_tensor(original[name], group, bits)
        dtype = original[name].dtype
        quant_equal["words"] += int(torch.equal(words.view(torch.int32), ours[name].view(torch.int32)))
        quant_equal["scales"] += int(torch.equal(scales.to(dtype), ours[module + ".scales"]))
        quant_equal["biases"] += int(torch.equal(biases.to(dtype), ours[module + ".qbiases"]))
    entry.update(modules=total, weights_equal_to_afq_dequantize=equal, max_abs_diff=max_diff,
                 transformers_quantize_equal_to_afq=quant_equal)
    # Logits: transformers' load of the quantized checkpoint against afq's dequantized checkpoint.
    plain = AutoModelForCausalLM.from_pretrained(ddir, dtype=torch.bfloat16)
    with torch.no_grad():
        a = model(prompt).logits.float()
        b = plain(prompt).logits.float()
    entry["logits_max_abs_diff_vs_afq_dequantized"] = (a - b).abs().max().item()
    report["cases"][case] = entry

print(json.dumps(report, indent=2))
with open(os.path.join(out_dir, "transformers_check.json"), "w") as f:
    json.dump(report, f, indent=2)
