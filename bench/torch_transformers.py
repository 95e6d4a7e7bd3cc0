#!/usr/bin/env python3
"""transformers' MetalConfig models on afq's kernels (afq_torch.enable_transformers()) against
transformers' own paths, on tinyshakes-5m and a random Llama-3.2-1B-shaped model (4 bits, group 64).

Parts (each writes DIR/<part>.json; --summary prints one table of whatever is there):
  accuracy  per device: logits of the pre-quantized checkpoint on afq against transformers' dequantized
            path, both against the float32 dequantized path (afq must be no further from it than 2x
            the bf16 path); 32 greedy tokens compared (a divergence is reported with the reference's
            top-2 margin there); quantize on the fly == transformers' MetalQuantize; for tinyshakes,
            also a checkpoint written by `afq quantize --layout transformers`.
  memory    CUDA: weights resident and peak during load: bf16 checkpoint, transformers' dequantized
            load, afq pre-quantized, afq quantize-on-the-fly; linear-layer bytes alone.
  speed     decode tokens/s of generate() (16-token prompt, --new-tokens greedy tokens, batch 1 and 8),
            transformers bf16 against afq, eager; with --compile, static cache + torch.compile
            (generate's own compile path, mode reduce-overhead, fullgraph).

    PYTHONPATH=build-torch/python python3 bench/torch_transformers.py --parts accuracy,memory,speed \\
        --devices cuda,cpu --results build-torch/results
    python3 bench/torch_transformers.py --summary --results build-torch/results
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "torch-ext", "tests"))

BITS, GROUP_SIZE = 4, 64
LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=4096,
                tie_word_embeddings=True, rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001,
                rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=8192))


def log(*args):
    print(*args, flush=True)


def free():
    """Returns memory of models the caller has deleted (`del model; free()`)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- models and loading ----------------------------------------------------------------------------


def prepare(name, work, afq_cli):
    """{kind: checkpoint dir} for one model: float, metal (transformers' quantizer), afq (afq's CLI)."""
    from metal_checkpoints import write_metal_checkpoint, write_random_llama

    dirs = {}
    if name == "tinyshakes":
        dirs["float"] = os.path.join(ROOT, "models", "tinyshakes-5m")
    else:
        dirs["float"] = os.path.join(work, "llama-1b")
        if not os.path.exists(os.path.join(dirs["float"], "config.json")):
            log(f"writing a random Llama-3.2-1B-shaped checkpoint to {dirs['float']}")
            write_random_llama(dirs["float"], device="cuda" if torch.cuda.is_available() else "cpu", **LLAMA_1B)
    dirs["metal"] = os.path.join(work, f"{name}-metal-b{BITS}g{GROUP_SIZE}")
    if not os.path.exists(os.path.join(dirs["metal"], "config.json")):
        # transformers' quantizer on the CPU, where tests/test_transformers.py finds afq's result
        # equal bit for bit; against a checkpoint it quantized on CUDA, 0 of 112 modules were equal.
        write_metal_checkpoint(dirs["float"], dirs["metal"], BITS, GROUP_SIZE, device="cpu")
    if name == "tinyshakes":
        afq_dir = os.path.join(work, "tinyshakes-afq-mlx-b4g64")
        if afq_cli and os.path.exists(afq_cli):
            if not os.path.exists(os.path.join(afq_dir, "config.json")):
                subprocess.run([afq_cli, "quantize", dirs["float"], afq_dir, "--bits", str(BITS), "--group-size",
                                str(GROUP_SIZE), "--method", "mlx", "--layout", "transformers"], check=True)
            dirs["afq"] = afq_dir
        elif os.path.exists(os.path.join(ROOT, ".devcheck", "mlx-b4-g64", "config.json")):
            dirs["afq"] = os.path.join(ROOT, ".devcheck", "mlx-b4-g64")
    return dirs


def load(path, device, afq, dtype=torch.bfloat16, **kwargs):
    """A model loaded by transformers, with afq's integration on or off; returns (model, stats)."""
    import afq_torch
    from transformers import AutoModelForCausalLM

    if afq:
        afq_torch.enable_transformers()
    else:
        afq_torch.disable_transformers()
    gc.collect()
    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device, **kwargs).eval()
    if cuda:
        torch.cuda.synchronize()
    stats = {"load_s": round(time.perf_counter() - start, 2), **weight_bytes(model)}
    if cuda:
        stats["resident_mib"] = round((torch.cuda.memory_allocated() - base) / 2**20, 1)
        stats["peak_mib"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
    proj = model.model.layers[0].self_attn.q_proj
    stats["q_proj"] = f"{type(proj).__name__} {str(proj.weight.dtype)[6:]}"
    if hasattr(proj, "scales"):
        stats["q_proj"] += f", scales {str(proj.scales.dtype)[6:]}"
    return model, stats


def weight_bytes(model):
    """Bytes of parameters and buffers (tied ones once), and of the linear layers but lm_head."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    linear = 0
    for name, m in model.named_modules():
        if name.endswith("lm_head") or not hasattr(m, "weight") or not hasattr(m, "in_features"):
            continue
        for attr in ("weight", "scales", "qbiases"):
            t = getattr(m, attr, None)
            if isinstance(t, torch.Tensor):
                linear += t.numel() * t.element_size()
    return {"weights_mib": round(total / 2**20, 1), "linear_mib": round(linear / 2**20, 1)}


def prompt_ids(model_name, dirs, length, batch=1, seed=0):
    vocab = 2048 if model_name == "tinyshakes" else LLAMA_1B["vocab_size"]
    if model_name == "tinyshakes" and batch == 1:  # held-out Shakespeare
        try:
            from transformers import AutoTokenizer

            with open(os.path.join(dirs["float"], "valid.txt")) as f:
                text = f.read(4000)
            ids = AutoTokenizer.from_pretrained(dirs["float"])(text, return_tensors="pt").input_ids[:, :length]
            if ids.shape[1] == length:
                return ids
        except Exception as e:  # noqa: BLE001 - random ids are fine too
            log(f"tokenizer not used: {e}")
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def forward_logits(model, ids):
    with torch.no_grad():
        return model(ids.to(model.device), use_cache=False).logits.float().cpu()


def greedy(model, ids, steps):
    with torch.no_grad():
        out = model.generate(ids.to(model.device), attention_mask=torch.ones_like(ids).to(model.device),
                             max_new_tokens=steps, min_new_tokens=steps, do_sample=False, pad_token_id=0)
    return out[:, ids.shape[1]:].cpu()


# --- parts -----------------------------------------------------------------------------------------


def accuracy(model_name, dirs, device, steps=32):
    from transformers import MetalConfig

    result = {}
    ids = prompt_ids(model_name, dirs, 64)
    ref, ref_stats = load(dirs["metal"], device, afq=False)
    ref_logits, ref_tokens = forward_logits(ref, ids), greedy(ref, ids[:, :16], steps)
    del ref
    free()
    ref32, ref32_stats = load(dirs["metal"], device, afq=False, dtype=torch.float32)
    ref32 = ref32.float()  # transformers dequantizes to the scales' dtype (bf16) whatever dtype asks
    ref32_logits = forward_logits(ref32, ids)
    del ref32
    free()
    model, stats = load(dirs["metal"], device, afq=True)
    q_logits, q_tokens = forward_logits(model, ids), greedy(model, ids[:, :16], steps)
    scale = ref32_logits.abs().max().item()
    afq_err = (q_logits - ref32_logits).abs().max().item()
    bf16_err = (ref_logits - ref32_logits).abs().max().item()
    result["load"] = {"dequantized": ref_stats["q_proj"], "float32": ref32_stats["q_proj"], "afq": stats["q_proj"]}
    result["logits"] = {
        "max_abs_logit": round(scale, 4),
        "afq_vs_float32": round(afq_err, 5),
        "bf16_dequantized_vs_float32": round(bf16_err, 5),
        "afq_vs_bf16_dequantized": round((q_logits - ref_logits).abs().max().item(), 5),
        "pass": afq_err <= 2 * bf16_err + 1e-4 * scale,
    }
    result["greedy"] = compare_greedy(model, ref_tokens, q_tokens, ids[:, :16], q_logits, ref_logits)
    model_tokens = q_tokens
    del model
    free()

    fly, fly_stats = load(dirs["float"], device, afq=True,
                          quantization_config=MetalConfig(bits=BITS, group_size=GROUP_SIZE))
    from safetensors.torch import load_file

    stored = load_file(os.path.join(dirs["metal"], "model.safetensors"))
    modules = {n: m for n, m in fly.named_modules() if hasattr(m, "qbiases")}
    equal = sum(int(torch.equal(m.weight.view(torch.int32).cpu(), stored[n + ".weight"].view(torch.int32))
                    and torch.equal(m.scales.cpu(), stored[n + ".scales"].to(m.scales.dtype))
                    and torch.equal(m.qbiases.cpu(), stored[n + ".qbiases"].to(m.qbiases.dtype)))
                for n, m in modules.items())
    fly_tokens = greedy(fly, ids[:, :16], steps)
    result["on_the_fly"] = {"modules": len(modules), "equal_to_transformers_quantize": equal,
                            "greedy_equal_to_prequantized": bool(torch.equal(fly_tokens, model_tokens)),
                            "load_s": fly_stats["load_s"], "q_proj": fly_stats["q_proj"]}
    del fly
    free()

    if "afq" in dirs:  # a checkpoint written by `afq quantize --layout transformers` (mlx rule)
        deq, _ = load(dirs["afq"], device, afq=False)
        deq_logits, deq_tokens = forward_logits(deq, ids), greedy(deq, ids[:, :16], steps)
        del deq
        free()
        cli, cli_stats = load(dirs["afq"], device, afq=True)
        cli_logits, cli_tokens = forward_logits(cli, ids), greedy(cli, ids[:, :16], steps)
        result["afq_cli_checkpoint"] = {
            "q_proj": cli_stats["q_proj"],
            "afq_vs_bf16_dequantized": round((cli_logits - deq_logits).abs().max().item(), 5),
            "greedy": compare_greedy(cli, deq_tokens, cli_tokens, ids[:, :16], cli_logits, deq_logits),
        }
        del cli
        free()
    return result


def compare_greedy(model, ref_tokens, tokens, prompt, logits, ref_logits):
    """Equal, or where the first difference is and how close the reference's top two were there."""
    steps = ref_tokens.shape[1]
    same = (ref_tokens == tokens)[0]
    if bool(same.all()):
        return {"steps": steps, "equal": True}
    first = int((~same).nonzero()[0])
    prefix = torch.cat([prompt, ref_tokens[:, :first]], dim=1)
    with torch.no_grad():
        here = model(prefix.to(model.device), use_cache=False).logits[0, -1].float().cpu()
    top2 = here.topk(2).values
    margin, noise = (top2[0] - top2[1]).item(), (logits - ref_logits).abs().max().item()
    # A near tie: the top two were closer than the two paths' logits differ on the prompt.
    return {"steps": steps, "equal": False, "first_difference": first, "afq_top2_margin_there": round(margin, 5),
            "prompt_logit_noise": round(noise, 5), "near_tie": margin <= 2 * noise}


def memory(model_name, dirs):
    from transformers import MetalConfig

    rows = {}
    for kind, path, afq, extra in [("bf16 checkpoint", dirs["float"], False, {}),
                                   ("transformers dequantized", dirs["metal"], False, {}),
                                   ("afq pre-quantized", dirs["metal"], True, {}),
                                   ("afq on the fly", dirs["float"], True,
                                    {"quantization_config": MetalConfig(bits=BITS, group_size=GROUP_SIZE)})]:
        model, stats = load(path, "cuda", afq=afq, **extra)
        rows[kind] = stats
        del model
        free()
    deq, afq = rows["transformers dequantized"], rows["afq pre-quantized"]
    rows["ratio_resident"] = round(deq["resident_mib"] / afq["resident_mib"], 2)
    rows["ratio_linear"] = round(deq["linear_mib"] / afq["linear_mib"], 2)
    return rows


def decode_rate(model, batch, new_tokens, device, runs, compile_model):
    ids = torch.randint(3, model.config.vocab_size, (batch, 16), generator=torch.Generator().manual_seed(batch))
    ids = ids.to(device)
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                  do_sample=False, pad_token_id=0)
    if compile_model:
        kwargs["cache_implementation"] = "static"
    graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with torch.no_grad():
        model.generate(**kwargs, input_ids=ids)  # warm-up (compiles, when asked)
        times = []
        for _ in range(runs):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.generate(**kwargs, input_ids=ids)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs_before
    return {"tokens_per_s": round(batch * new_tokens / statistics.median(times), 1), "graphs_compiled": graphs}


def speed(model_name, dirs, device, batches, new_tokens, compile_model, runs):
    rows = {}
    for kind, path, afq in [("bf16", dirs["float"], False), ("afq", dirs["metal"], True)]:
        model, _ = load(path, device, afq=afq)
        if compile_model:
            try:
                from transformers import CompileConfig

                model.generation_config.compile_config = CompileConfig(fullgraph=True, mode="reduce-overhead")
            except ImportError:
                pass
        for batch in batches:
            key = f"{kind} b{batch}"
            try:
                rows[key] = decode_rate(model, batch, new_tokens, device, runs, compile_model)
            except Exception as e:  # noqa: BLE001 - one failing case is reported, the rest still run
                rows[key] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            log(f"  {model_name} {device} {'compiled' if compile_model else 'eager'} {key}: {rows[key]}")
        del model
        free()
    return rows


# --- summary ---------------------------------------------------------------------------------------


def summary(results_dir):
    def read(name):
        path = os.path.join(results_dir, name + ".json")
        return json.load(open(path)) if os.path.exists(path) else {}

    acc, mem = read("accuracy"), read("memory")
    eager, compiled = read("speed"), read("speed_compiled")
    lines = ["", "=== afq_torch + transformers: summary (4 bits, group 64)"]
    if acc:
        lines.append("model       device  logits |afq-f32|  |bf16deq-f32|  pass  greedy 32              on-the-fly==transformers  afq CLI ckpt")
        for key, r in sorted(acc.items()):
            if "error" in r:
                lines.append(f"{key:19s} ERROR {r['error'][:100]}")
                continue
            model, device = key.split(" ")
            g = r["greedy"]
            greedy_text = "equal" if g["equal"] else (f"differs at {g['first_difference']}"
                                                      f"{' (near tie)' if g['near_tie'] else ''}")
            fly = r["on_the_fly"]
            cli = r.get("afq_cli_checkpoint")
            cli_text = "-" if not cli else ("greedy equal" if cli["greedy"]["equal"] else "greedy differs")
            lines.append(f"{model:11s} {device:6s}  {r['logits']['afq_vs_float32']:<16.4g} {r['logits']['bf16_dequantized_vs_float32']:<14.4g} "
                         f"{'yes' if r['logits']['pass'] else 'NO':5s} {greedy_text:22s} "
                         f"{fly['equal_to_transformers_quantize']}/{fly['modules']:<22} {cli_text}")
    if mem:
        lines.append("CUDA weights (MiB): model       bf16 ckpt  dequantized  afq      afq on-the-fly (peak)  ratio all / linear")
        for model, r in sorted(mem.items()):
            if "error" in r:
                lines.append(f"  {model} ERROR {r['error'][:100]}")
                continue
            lines.append(f"                    {model:11s} {r['bf16 checkpoint']['resident_mib']:<10} "
                         f"{r['transformers dequantized']['resident_mib']:<12} {r['afq pre-quantized']['resident_mib']:<8} "
                         f"{r['afq on the fly']['resident_mib']} ({r['afq on the fly']['peak_mib']})        "
                         f"{r['ratio_resident']}x / {r['ratio_linear']}x")
    for title, data in [("eager", eager), ("torch.compile", compiled)]:
        if not data:
            continue
        lines.append(f"decode tokens/s, {title}: model device batch | transformers bf16 | afq | afq/bf16")
        for key, rows in sorted(data.items()):
            if "error" in rows:
                lines.append(f"  {key} ERROR {rows['error'][:100]}")
                continue
            for batch in sorted({k.split(' b')[1] for k in rows}, key=int):
                b, a = rows.get(f"bf16 b{batch}", {}), rows.get(f"afq b{batch}", {})
                if "tokens_per_s" in b and "tokens_per_s" in a:
                    note = "" if title == "eager" else f"  (graphs {b['graphs_compiled']}/{a['graphs_compiled']})"
                    lines.append(f"  {key:18s} {batch:>3} | {b['tokens_per_s']:>10} | {a['tokens_per_s']:>8} | "
                                 f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x{note}")
                else:
                    lines.append(f"  {key:18s} {batch:>3} | {b.get('tokens_per_s', b.get('error', '-'))} | "
                                 f"{a.get('tokens_per_s', a.get('error', '-'))}")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="accuracy,memory,speed")
    parser.add_argument("--models", default="tinyshakes,llama1b")
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--results", default=os.path.join(ROOT, "build-torch", "results"))
    parser.add_argument("--work", default=os.path.join(ROOT, "build-torch", "bench-models"))
    parser.add_argument("--afq-cli", default=os.path.join(ROOT, "build-torch", "afq", "afq"))
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--cpu-new-tokens", type=int, default=16)
    parser.add_argument("--compile", action="store_true", help="speed with static cache + torch.compile")
    parser.add_argument("--summary", action="store_true", help="only print the table of the results so far")
    parser.add_argument("--no-summary", action="store_true", help="do not print the table at the end")
    args = parser.parse_args()
    if args.summary:
        summary(args.results)
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference must be float32
    import transformers

    import afq_torch  # noqa: F401 - fails early when the extension is not built

    os.makedirs(args.results, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    parts = args.parts.split(",")
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, devices {devices}, parts {parts}")

    def update(name, key, fn):
        path = os.path.join(args.results, name + ".json")
        data = json.load(open(path)) if os.path.exists(path) else {}
        start = time.time()
        try:
            data[key] = fn()
        except Exception as e:  # noqa: BLE001 - record and go on with the other cases
            import traceback

            traceback.print_exc()
            data[key] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
        log(f"[{name} {key}] {round(time.time() - start, 1)} s: {json.dumps(data[key])[:600]}")
        with open(path, "w") as f:
            json.dump(data, f, indent=2)

    for model_name in args.models.split(","):
        dirs = prepare(model_name, args.work, args.afq_cli)
        for device in devices:
            if "accuracy" in parts:
                update("accuracy", f"{model_name} {device}", lambda: accuracy(model_name, dirs, device))
            if "speed" in parts:
                name = "speed_compiled" if args.compile else "speed"
                new_tokens = args.new_tokens if device == "cuda" else args.cpu_new_tokens
                batches = [1, 8] if device == "cuda" else [1]
                runs = 3 if device == "cuda" else 2
                update(name, f"{model_name} {device}",
                       lambda: speed(model_name, dirs, device, batches, new_tokens, args.compile, runs))
        if "memory" in parts and "cuda" in devices:
            update("memory", model_name, lambda: memory(model_name, dirs))
    if not args.no_summary:
        summary(args.results)


if __name__ == "__main__":
    main()
