#!/usr/bin/env python3
"""Decode tokens/s of transformers bf16 and of afq (MetalConfig 4-bit group 64) measured in
alternation: both models stay loaded and their generate() calls take turns, so that the host's
drift (eager decoding of a 1B model is bound by Python and launches, and the GPU machine's CPU
speed varies from minute to minute) falls on both alike. Prints each round and the medians.
    PYTHONPATH=build-torch/python python3 bench/torch_decode_ab.py [--device cuda] [--rounds 5]
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
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", default=os.path.join(tt.ROOT, "build-torch", "bench-models"))
    args = parser.parse_args()
    dirs = tt.prepare(args.model, args.work, afq_cli=None)
    # afq's patch is in place only while its model loads; a loaded model keeps its MetalLinear layers.
    models = {"bf16": tt.load(dirs["float"], args.device, afq=False)[0],
              "afq": tt.load(dirs["metal"], args.device, afq=True)[0]}
    ids = torch.randint(3, models["bf16"].config.vocab_size, (args.batch, 16),
                        generator=torch.Generator().manual_seed(0)).to(args.device)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                  min_new_tokens=args.tokens, do_sample=False, pad_token_id=0)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    rates = {kind: [] for kind in models}
    with torch.no_grad():
        for model in models.values():
            model.generate(**kwargs)  # warm-up
        for round_ in range(args.rounds):
            for kind, model in models.items():
                sync()
                start = time.perf_counter()
                model.generate(**kwargs)
                sync()
                rates[kind].append(args.batch * args.tokens / (time.perf_counter() - start))
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)
    bf16, afq = statistics.median(rates["bf16"]), statistics.median(rates["afq"])
    print(f"{args.model} {args.device} batch {args.batch}, eager, medians of {args.rounds} alternating rounds: "
          f"transformers bf16 {bf16:.1f}, afq {afq:.1f} tokens/s, afq/bf16 {afq / bf16:.2f}x")


if __name__ == "__main__":
    main()
