#!/usr/bin/env python3
"""Where a transformers decode step goes: torch.profiler over generate() of the random
Llama-3.2-1B-shaped model, transformers bf16 against afq (MetalConfig 4-bit group 64), eager and
with static cache + torch.compile (reduce-overhead). Prints each one's top operators by host time
and by device time, so a gap between the two is traced to the operators that make it.
    PYTHONPATH=build-torch/python python3 bench/torch_profile_decode.py [--compile] [--tokens 16]
Uses the checkpoints bench/torch_transformers.py prepares under build-torch/bench-models.
"""
import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_transformers as tt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--work", default=os.path.join(tt.ROOT, "build-torch", "bench-models"))
    args = parser.parse_args()
    dirs = tt.prepare("llama1b", args.work, afq_cli=None)
    ids = torch.randint(3, 128000, (1, 16), generator=torch.Generator().manual_seed(1)).cuda()
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                  do_sample=False, pad_token_id=0)
    if args.compile:
        kwargs["cache_implementation"] = "static"
    for kind, path, afq in [("bf16", dirs["float"], False), ("afq", dirs["metal"], True)]:
        model, _ = tt.load(path, "cuda", afq=afq)
        if args.compile:
            from transformers import CompileConfig

            model.generation_config.compile_config = CompileConfig(fullgraph=True, mode="reduce-overhead")
        with torch.no_grad():
            model.generate(**kwargs, input_ids=ids)
            model.generate(**kwargs, input_ids=ids)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                model.generate(**kwargs, input_ids=ids)
                torch.cuda.synchronize()
        averages = prof.key_averages()
        mode = "compiled" if args.compile else "eager"
        print(f"=== {kind} ({mode}), {args.tokens} tokens: top operators by host time (self)")
        print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))
        print(f"=== {kind} ({mode}): top by device time")
        print(averages.table(sort_by="self_cuda_time_total", row_limit=args.rows, max_name_column_width=60))
        del model
        tt.free()


if __name__ == "__main__":
    main()
