#!/usr/bin/env python3
"""transformers bf16 on the GPU, the peer that `afq bench generate --device cuda` is read against:
a random model of a real shape (the shapes of tools/afq/bench_generate.cpp), built in device
memory in bf16, timed as afq's bench times itself: prompt tokens/s of one 512-token prompt, then
decode tokens/s at each batch size (greedy generate(), eager, the prompt of the same length per
sequence, the median of --runs calls after a warm-up, the prompt's own time taken out).
    python3 bench/transformers_generate.py --shape llama-3-8b --batches 1,16
"""
import argparse
import statistics
import time

import torch

SHAPES = {  # hidden, intermediate, layers, heads, kv_heads, head_dim, tied (vocab 128256 for all)
    "llama-3.2-1b": (2048, 8192, 16, 32, 8, 64, True),
    "llama-3.2-3b": (3072, 8192, 28, 24, 8, 128, True),
    "llama-3-8b": (4096, 14336, 32, 32, 8, 128, False),
}


def build(shape):
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv_heads, head_dim, tied = SHAPES[shape]
    config = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                         vocab_size=128256, max_position_embeddings=8192, tie_word_embeddings=tied,
                         rms_norm_eps=1e-5, rope_theta=500000.0)
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 (an 8B model in float32 first would take 32 GB)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    return model


def timed(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="llama-3.2-1b", choices=sorted(SHAPES))
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build(args.shape)
    vocab = model.config.vocab_size
    with torch.no_grad():
        ids = torch.randint(3, vocab, (1, args.prompt_tokens), device="cuda")
        prompt_s = timed(lambda: model(ids, use_cache=False), args.runs)
        print(f"transformers {__import__('transformers').__version__} bf16, {args.shape}, eager, "
              f"{torch.cuda.get_device_name()}: peak device memory after load "
              f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        print(f"prompt  {args.prompt_tokens} tokens: {args.prompt_tokens / prompt_s:.1f} tokens/s")
        for batch in [int(b) for b in args.batches.split(",")]:
            ids = torch.randint(3, vocab, (batch, args.prompt_tokens), device="cuda")

            def run(new_tokens):
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

            first = timed(lambda: run(1), args.runs)  # the prompt and the first token
            total = timed(lambda: run(args.decode_tokens + 1), args.runs)
            rate = batch * args.decode_tokens / (total - first)
            print(f"decode  {args.decode_tokens} tokens x batch {batch}: {rate:.1f} tokens/s "
                  f"({(total - first) / args.decode_tokens * 1e3:.1f} ms a step)", flush=True)


if __name__ == "__main__":
    main()
