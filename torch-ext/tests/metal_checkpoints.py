"""Test and benchmark helpers: MetalConfig checkpoints made by transformers' own quantizer, and a
random Llama of a given shape."""
import glob
import json
import os
import shutil

import torch


def write_metal_checkpoint(float_dir, out_dir, bits, group_size, device="cpu"):
    """A MetalConfig checkpoint of the float checkpoint float_dir, as transformers' MetalQuantize makes
    it: every decoder projection (`*_proj.weight`, the model's nn.Linear weights but lm_head) becomes
    uint32 words + scales + qbiases (the weight's dtype) by transformers' _affine_quantize_tensor."""
    from safetensors.torch import load_file, save_file
    from transformers.integrations.metal_quantization import _affine_quantize_tensor

    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for path in sorted(glob.glob(os.path.join(float_dir, "*.safetensors"))):
        tensors.update(load_file(path))
    out = {}
    for name, w in tensors.items():
        if name.endswith("proj.weight") and w.dim() == 2:
            words, scales, biases = _affine_quantize_tensor(w.to(device), group_size, bits)
            base = name[: -len(".weight")]
            out[name] = words.view(torch.int32).cpu().view(torch.uint32).contiguous()
            out[base + ".scales"] = scales.to(w.dtype).cpu().contiguous()
            out[base + ".qbiases"] = biases.to(w.dtype).cpu().contiguous()
        else:
            out[name] = w.contiguous()
    save_file(out, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(float_dir, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {"quant_method": "metal", "bits": bits, "group_size": group_size,
                                     "modules_to_not_convert": ["lm_head"]}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for extra in ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(float_dir, extra)):
            shutil.copy(os.path.join(float_dir, extra), out_dir)
    return out_dir


def write_random_llama(out_dir, seed=0, std=None, device="cpu", **shape):
    """A random bf16 Llama checkpoint with the given config fields. std (if set) replaces the weights'
    init scale, and norms get random gains, so that every weight matters."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    config = LlamaConfig(**shape)
    with torch.device(device):  # random init of a large model is quicker on the GPU
        model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    if std is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.copy_(1 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(std * torch.randn_like(p))
    model.to("cpu").save_pretrained(out_dir)
    del model
    return out_dir
