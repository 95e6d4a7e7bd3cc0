"""afq_torch's affine_qmm_t against F.linear on the same shapes, operator by operator.

The transformers benchmark (torch_transformers.py) times whole decode steps, where Python and
launch overhead hide the kernels; this times the one call MetalLinear makes, at the linear shapes
of a Llama-3.2-1B decode step, against F.linear on the bf16 weight it was quantized from: the
time of one synchronized call, and on CUDA the host's cost of a call (calls issued back to back
under torch.no_grad, as generate() makes them: what bounds eager decoding of small models).
  python3 bench/torch_qmm_ops.py --devices cpu,cuda [--m 1,8] [--threads 1,16]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import afq_torch

# (name, N, K) of one Llama-3.2-1B layer, and its lm_head.
SHAPES = [("q/o", 2048, 2048), ("k/v", 512, 2048), ("gate/up", 8192, 2048), ("down", 2048, 8192)]


def timed(fn, device, runs):
    """Median seconds of fn() over `runs` calls, after warm-up."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def host_cost(fn, runs):
    """Seconds of host time per call of fn(), issued back to back (the device catches up after)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    seconds = (time.perf_counter() - start) / runs
    torch.cuda.synchronize()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--m", default="1,8")
    parser.add_argument("--threads", default="", help="CPU thread counts to try (default: torch's)")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        thread_counts = [int(t) for t in args.threads.split(",") if t] if device == "cpu" else []
        for threads in thread_counts or [None]:
            if threads:
                torch.set_num_threads(threads)
            print(f"{device}: torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
                  f"{args.bits}-bit group {args.group_size}, bf16 x; median of many calls")
            host_header = " | host us: F.linear / afq" if device == "cuda" else ""
            print(f"  {'shape':8} {'M':>3} {'N':>6} {'K':>6} | {'F.linear bf16 us':>16} | {'afq us':>9} | afq speed-up"
                  + host_header)
            for m in [int(v) for v in args.m.split(",")]:
                for name, n, k in SHAPES:
                    w = torch.randn(n, k, dtype=torch.bfloat16, device=device) * 0.02
                    words, scales, qbiases = afq_torch.affine_quantize(w, args.group_size, args.bits, "minmax")
                    x = torch.randn(m, k, dtype=torch.bfloat16, device=device)
                    runs = 200 if device == "cuda" else 50
                    linear = lambda: F.linear(x, w)  # noqa: E731
                    qmm = lambda: afq_torch.affine_qmm_t(x, words, scales, qbiases, args.group_size,  # noqa: E731
                                                         args.bits)
                    with torch.no_grad():
                        ref, afq = timed(linear, device, runs), timed(qmm, device, runs)
                        host = f" | {host_cost(linear, 1000) * 1e6:.1f} / {host_cost(qmm, 1000) * 1e6:.1f}" \
                            if device == "cuda" else ""
                    print(f"  {name:8} {m:>3} {n:>6} {k:>6} | {ref * 1e6:16.1f} | {afq * 1e6:9.1f} | {ref / afq:.2f}x"
                          + host)


if __name__ == "__main__":
    main()
