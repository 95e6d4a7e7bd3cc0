#!/usr/bin/env python3
"""Tiny random models of each supported architecture, saved by transformers, with transformers'
own float32 logits and greedy tokens; plus a MetalConfig checkpoint made with transformers' own
quantizer and the logits transformers computes from it, and tinyshakes-5m's logits.
Writes everything under $FIXTURES/models/ (tests/data/models/ in the repository)."""
import json
import os

import torch
import transformers
from safetensors.torch import save_file, load_file
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.integrations import metal_quantization as mq

out = os.path.join(os.environ.get("FIXTURES", "/tmp/afq-fixtures"), "models")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
PROMPT = [5, 17, 42, 99, 3, 250, 7, 7, 128, 64, 1, 300]

common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=320, max_position_embeddings=256, rms_norm_eps=1e-5,
              bos_token_id=1, eos_token_id=2)
cases = {
    "llama3-rope": ("llama", dict(tie_word_embeddings=False, rope_parameters=dict(
        rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=16))),
    "llama-linear-tied": ("llama", dict(tie_word_embeddings=True,
                                        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0))),
    "mistral-window": ("mistral", dict(sliding_window=6, tie_word_embeddings=False,
                                       rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "qwen2-bias": ("qwen2", dict(tie_word_embeddings=True, use_sliding_window=False,
                                 rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "qwen3-qknorm": ("qwen3", dict(head_dim=32, tie_word_embeddings=False, use_sliding_window=False,
                                   rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
}


def record(model, name, prompt):
    model = model.float().eval()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(ids).logits[0].contiguous()
        greedy = model.generate(ids, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                                eos_token_id=None, pad_token_id=0)[0, len(prompt):]
    save_file({"prompt": torch.tensor(prompt, dtype=torch.int32), "logits": logits,
               "greedy": greedy.to(torch.int32).contiguous()}, os.path.join(out, name + ".expected.safetensors"))


for name, (model_type, extra) in cases.items():
    config = AutoConfig.for_model(model_type, **common, **extra)
    model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    with torch.no_grad():  # random norms and biases, so that every weight matters
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    model.save_pretrained(os.path.join(out, name))
    record(AutoModelForCausalLM.from_pretrained(os.path.join(out, name), dtype=torch.float32), name, PROMPT)

# A MetalConfig checkpoint of llama3-rope made by transformers' own quantizer (bits 4, group 32),
# and the logits transformers computes when it loads it (dequantized: no Apple GPU here).
src = os.path.join(out, "llama3-rope")
qdir = os.path.join(out, "llama3-rope-metal-b4-g32")
os.makedirs(qdir, exist_ok=True)
weights = load_file(os.path.join(src, "model.safetensors"))
quantized = {}
for name, w in weights.items():
    if name.endswith("proj.weight"):
        words, scales, biases = mq._affine_quantize_tensor(w, 32, 4)
        base = name[: -len(".weight")]
        quantized[name] = words.view(torch.int32).contiguous()
        quantized[base + ".scales"] = scales.to(w.dtype).contiguous()
        quantized[base + ".qbiases"] = biases.to(w.dtype).contiguous()
    else:
        quantized[name] = w
save_file({k: v.view(torch.uint32) if v.dtype == torch.int32 and k.endswith("proj.weight") else v
           for k, v in quantized.items()}, os.path.join(qdir, "model.safetensors"), metadata={"format": "pt"})
config = json.load(open(os.path.join(src, "config.json")))
config["quantization_config"] = {"quant_method": "metal", "bits": 4, "group_size": 32,
                                 "modules_to_not_convert": ["lm_head"]}
json.dump(config, open(os.path.join(qdir, "config.json"), "w"), indent=2)
record(AutoModelForCausalLM.from_pretrained(qdir, dtype=torch.float32, device_map="cpu"),
       "llama3-rope-metal-b4-g32", PROMPT)

# tinyshakes-5m (the shipped model): float32 logits of a real prompt.
tok = transformers.AutoTokenizer.from_pretrained("models/tinyshakes-5m")
prompt = tok("ROMEO:\nBut soft, what light through yonder window breaks?")["input_ids"]
record(AutoModelForCausalLM.from_pretrained("models/tinyshakes-5m", dtype=torch.float32), "tinyshakes-5m", prompt)
print("done", transformers.__version__, sorted(os.listdir(out)))
