#!/usr/bin/env python3
"""afq_torch.enable_transformers() with transformers 5.17, on a small random Llama, on CUDA and CPU:
a pre-quantized MetalConfig checkpoint loads quantized (MetalLinear, uint32 words) instead of
dequantized and its logits match transformers' dequantized path; MetalConfig(bits=4, group_size=64)
on a float checkpoint quantizes on the fly to exactly transformers' MetalQuantize result; the
quantized model saves and reloads; torch.compile(fullgraph=True) runs it; MetalConfig(dequantize=True)
and disable_transformers() give transformers' behaviour back; an untested version is refused.

    PYTHONPATH=build-torch/python python3 torch-ext/tests/test_transformers.py [--json FILE]
Closes with the line 'N passed, N failed'; exits 1 on a failure.
"""
import argparse
import json
import os
import sys
import tempfile
import traceback
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metal_checkpoints import write_metal_checkpoint, write_random_llama  # noqa: E402

import afq_torch  # noqa: E402
import afq_torch.transformers as afq_transformers  # noqa: E402

SHAPE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=512, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
             pad_token_id=0, rms_norm_eps=1e-5)
BITS, GROUP_SIZE = 4, 64


class Checks:
    def __init__(self):
        self.passed, self.failed = 0, []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(f"{name}: {detail}")
            print(f"FAIL {name}: {detail}", flush=True)

    def run(self, name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            self.check(name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")


def load(path, device, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map=device, **kwargs).eval()


def first_proj(model):
    return model.model.layers[0].self_attn.q_proj


def quantized_modules(model):
    return {name: m for name, m in model.named_modules() if hasattr(m, "qbiases")}


def logits(model, ids):
    with torch.no_grad():
        return model(ids.to(model.device), use_cache=False).logits.float().cpu()


def relative_diff(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    import transformers
    from transformers import MetalConfig

    checks = Checks()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, devices {devices}", flush=True)
    work = tempfile.mkdtemp(prefix="afq-torch-test-")
    float_dir = write_random_llama(os.path.join(work, "float"), std=0.08, **SHAPE)
    quant_dir = write_metal_checkpoint(float_dir, os.path.join(work, "metal"), BITS, GROUP_SIZE)
    ids = torch.randint(3, SHAPE["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(0))

    def version_guard():
        real = afq_transformers._installed_transformers_version
        try:
            afq_transformers._installed_transformers_version = lambda: "5.16.2"
            try:
                afq_torch.enable_transformers()
                checks.check("untested version refused", False, "no exception")
            except RuntimeError as e:
                checks.check("untested version refused", "tested with transformers 5.17.x only" in str(e), str(e))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                afq_torch.enable_transformers(allow_untested_version=True)
            checks.check("untested version allowed on request", any("5.17" in str(w.message) for w in caught), "no warning")
        finally:
            afq_transformers._installed_transformers_version = real
            afq_torch.disable_transformers()

    checks.run("version guard", version_guard)

    # transformers' own behaviour first: the reference (dequantized to bf16 nn.Linear) per device.
    reference = {}
    for device in devices:
        def reference_load(device=device):
            model = load(quant_dir, device)
            checks.check(f"{device} without afq: dequantized", type(first_proj(model)).__name__ == "Linear",
                         type(first_proj(model)).__name__)
            reference[device] = logits(model, ids)
        checks.run(f"{device} reference", reference_load)

    checks.check("enable_transformers", afq_torch.enable_transformers() is True, "returned False")
    checkpoint = {}
    from safetensors.torch import load_file
    checkpoint.update(load_file(os.path.join(quant_dir, "model.safetensors")))

    for device in devices:
        def prequantized(device=device):
            model = load(quant_dir, device)
            proj = first_proj(model)
            checks.check(f"{device} pre-quantized stays quantized", type(proj).__name__ == "MetalLinear"
                         and proj.weight.dtype == torch.uint32 and proj.weight.device.type == device,
                         f"{type(proj).__name__} {proj.weight.dtype} {proj.weight.device}")
            checks.check(f"{device} scales in bf16", proj.scales.dtype == torch.bfloat16, str(proj.scales.dtype))
            modules = quantized_modules(model)
            checks.check(f"{device} every projection quantized", len(modules) == 7 * SHAPE["num_hidden_layers"],
                         f"{len(modules)} MetalLinear modules")
            got = logits(model, ids)
            diff = relative_diff(got, reference[device])
            checks.check(f"{device} pre-quantized logits match the dequantized path", diff < 2e-2, f"relative {diff:.3g}")
            out = model.generate(ids[:1].to(device), max_new_tokens=4, do_sample=False)
            checks.check(f"{device} generate runs", out.shape == (1, ids.shape[1] + 4), str(tuple(out.shape)))
            # Saved by transformers, loaded again: the same tensors and logits.
            saved = os.path.join(work, f"saved-{device}")
            model.save_pretrained(saved)
            again = load(saved, device)
            before, after = model.state_dict(), again.state_dict()

            def words(t):
                return t.view(torch.int32) if t.dtype == torch.uint32 else t

            same = sorted(before) == sorted(after) and all(torch.equal(words(before[k]), words(after[k])) for k in before)
            checks.check(f"{device} save_pretrained + reload", same and torch.equal(logits(again, ids), got), "differ")
            # torch.compile through MetalLinear.forward (transformers' code calling afq's op): no graph break.
            x = torch.randn(3, SHAPE["hidden_size"], dtype=torch.bfloat16, device=device)
            with torch.no_grad():
                eager, traced = proj(x), torch.compile(proj, fullgraph=True)(x)
            checks.check(f"{device} torch.compile(MetalLinear, fullgraph=True)",
                         torch.allclose(eager.float(), traced.float(), rtol=1e-2, atol=1e-2), "differs from eager")
            if device == "cuda":  # the whole model (transformers' own code must trace too)
                compiled = torch.compile(model, fullgraph=True)
                with torch.no_grad():
                    c = compiled(ids.to(device), use_cache=False).logits.float().cpu()
                # Inductor fuses the bf16 norms, RoPE and softmax its own way: 2.3% from eager was
                # measured on this random model, whose afq layers alone stay within 1% (above).
                checks.check(f"{device} torch.compile(fullgraph=True)", relative_diff(c, got) < 5e-2,
                             f"relative {relative_diff(c, got):.3g}")
        checks.run(f"{device} pre-quantized", prequantized)

        def on_the_fly(device=device):
            model = load(float_dir, device, quantization_config=MetalConfig(bits=BITS, group_size=GROUP_SIZE))
            modules = quantized_modules(model)
            checks.check(f"{device} on-the-fly quantized", len(modules) == 7 * SHAPE["num_hidden_layers"]
                         and all(m.weight.dtype == torch.uint32 and m.weight.device.type == device for m in modules.values()),
                         f"{len(modules)} modules")
            equal = 0
            for name, m in modules.items():
                equal += int(torch.equal(m.weight.view(torch.int32).cpu(), checkpoint[name + ".weight"].view(torch.int32))
                             and torch.equal(m.scales.cpu(), checkpoint[name + ".scales"])
                             and torch.equal(m.qbiases.cpu(), checkpoint[name + ".qbiases"]))
            checks.check(f"{device} on-the-fly == transformers' MetalQuantize", equal == len(modules),
                         f"{equal} of {len(modules)} modules equal")
            diff = relative_diff(logits(model, ids), reference[device])
            checks.check(f"{device} on-the-fly logits", diff < 2e-2, f"relative {diff:.3g}")
        checks.run(f"{device} on the fly", on_the_fly)

        def dequantize_asked(device=device):
            from transformers import MetalConfig as Config

            model = load(quant_dir, device, quantization_config=Config(bits=BITS, group_size=GROUP_SIZE, dequantize=True))
            checks.check(f"{device} MetalConfig(dequantize=True) still dequantizes",
                         type(first_proj(model)).__name__ == "Linear", type(first_proj(model)).__name__)
        checks.run(f"{device} dequantize=True", dequantize_asked)

    def bad_devices():
        for device, error in [("disk", ValueError), ("mps", ValueError)]:
            try:
                afq_transformers._check_device(device)
                checks.check(f"device {device} refused", False, "no exception")
            except error as e:
                checks.check(f"device {device} refused", "afq_torch" in str(e), str(e))
    checks.run("device checks", bad_devices)

    def disabled_again():
        afq_torch.disable_transformers()
        model = load(quant_dir, "cpu")
        checks.check("disable_transformers: dequantized again", type(first_proj(model)).__name__ == "Linear",
                     type(first_proj(model)).__name__)
    checks.run("disable", disabled_again)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "devices": devices,
                       "passed": checks.passed, "failed": checks.failed}, f, indent=2)
    print(f"{checks.passed} passed, {len(checks.failed)} failed")
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
