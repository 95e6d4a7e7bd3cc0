#!/usr/bin/env python3
"""Decode tokens/s of transformers bf16 and of afq (MetalConfig 4-bit group 64) measured in
alternation: both models stay loaded and their generate() calls take turns, so that the host's
drift (eager decoding of a 1B model is bound by Python and launches, and the GPU machine's CPU
speed varies from minute to minute) falls on both alike. Prints each round and the medians.
    PYTHONPATH=build-torch/python python3 bench/torch_decode_ab.py [--device cuda] [--batches 1,8]
        [--rounds 5] [--compile]
--compile decodes with a static cache and generate()'s torch.compile (reduce-overhead, fullgraph).
Uses the checkpoints bench/torch_transformers.py prepares under build-torch/bench-models.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_transformers as tt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="llama1b")
    parser.add_argument("--batches", default="1")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="static cache + torch.compile (reduce-overhead)")
    parser.add_argument("--work", default=os.path.join(tt.ROOT, "build-torch", "bench-models"))
    args = parser.parse_args()
    dirs = tt.prepare(args.model, args.work, afq_cli=None)
    # afq's patch is in place only while its model loads; a loaded model keeps its MetalLinear layers.
    models = {"bf16": tt.load(dirs["float"], args.device, afq=False)[0],
              "afq": tt.load(dirs["metal"], args.device, afq=True)[0]}
    if args.compile:
        from transformers import CompileConfig

        for model in models.values():
            model.generation_config.compile_config = CompileConfig(fullgraph=True, mode="reduce-overhead")
    for batch in [int(b) for b in args.batches.split(",")]:
        alternate(models, batch, args)


def alternate(models, batch, args):
    ids = torch.randint(3, models["bf16"].config.vocab_size, (batch, 16),
                        generator=torch.Generator().manual_seed(0)).to(args.device)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                  min_new_tokens=args.tokens, do_sample=False, pad_token_id=0)
    if args.compile:
        kwargs["cache_implementation"] = "static"
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    rates = {kind: [] for kind in models}
    mode = "torch.compile" if args.compile else "eager"
    with torch.no_grad():
        for model in models.values():
            model.generate(**kwargs)  # warm-up (compiles, when asked)
        for round_ in range(args.rounds):
            for kind, model in models.items():
                sync()
                start = time.perf_counter()
                model.generate(**kwargs)
                sync()
                rates[kind].append(batch * args.tokens / (time.perf_counter() - start))
            print(f"  round {round_}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)
    bf16, afq = statistics.median(rates["bf16"]), statistics.median(rates["afq"])
    wins = sum(a >= b for a, b in zip(rates["afq"], rates["bf16"]))
    print(f"{args.model} {args.device} batch {batch}, {mode}, medians of {args.rounds} alternating rounds: "
          f"transformers bf16 {bf16:.1f}, afq {afq:.1f} tokens/s, afq/bf16 {afq / bf16:.2f}x "
          f"(afq ahead in {wins} of {args.rounds} rounds)", flush=True)

if __name__ == "__main__":
    main()
