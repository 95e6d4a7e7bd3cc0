#!/usr/bin/env python3
"""PyTorch's int4 weight-only GEMM (torch._weight_int4pack_mm, group 64) on the shapes of
`afq bench qmm --device cuda`, for a side-by-side table.

  python3 bench/torch_int4.py --afq-json afq.jsonl [--m 1,512] [--n ...] [--k ...]

Times with CUDA events (warm-up, median of batches), weights rotating among copies worth 4x the
L2 cache, like afq's benchmark. With --afq-json (afq bench qmm --json output) it prints afq's
time beside torch's for every case both have. Each torch case is first checked against a bf16
matmul of its own dequantized weight.
"""
import argparse
import json
import statistics

import torch


def pack_int4(q):
    """q uint8 [N, K] in 0..15 -> torch's int4 tiled layout (two values a byte, high nibble first)."""
    pairs = (q[:, 0::2] << 4 | q[:, 1::2]).to(torch.uint8)
    return torch._convert_weight_to_int4pack(pairs, 8)


def median_seconds(fn, batches=31, calls=20):
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    times = []
    call = 0
    for _ in range(batches):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn(call)
            call += 1
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e-3 / calls)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", default="1,16,512,1024,2048,4096")
    parser.add_argument("--n", default="4096,14336,8192,28672")
    parser.add_argument("--k", default="14336,4096,8192,8192")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--afq-json", help="output of afq bench qmm --device cuda --json (4-bit, same group size)")
    args = parser.parse_args()
    ms = [int(v) for v in args.m.split(",")]
    shapes = list(zip([int(v) for v in args.n.split(",")], [int(v) for v in args.k.split(",")]))
    g = args.group_size

    afq = {}
    if args.afq_json:
        with open(args.afq_json) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    r = json.loads(line)
                    if r.get("bits") == 4 and r.get("group_size") == g:
                        afq[(r["m"], r["n"], r["k"])] = r

    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    print(f"torch {torch.__version__}, {props.name}; int4 group {g}; times are medians of event-timed batches")
    print(f"{'M':>5} {'N':>6} {'K':>6} | {'torch int4 us':>13} {'TFLOP/s':>8} {'GB/s':>6} | "
          f"{'afq us':>8} {'TFLOP/s':>8} {'GB/s':>6} | {'afq speedup':>11}")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for n, k in shapes:
        q = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda", generator=gen)
        scales = (torch.rand(k // g, n, device="cuda", generator=gen) * 0.02 + 0.001).to(torch.bfloat16)
        zeros = (torch.randn(k // g, n, device="cuda", generator=gen) * 0.01).to(torch.bfloat16)
        packed = pack_int4(q)
        sz = torch.stack([scales, zeros], dim=2).contiguous()  # [K/g, N, 2]: w = (q - 8) * scale + zero
        weight_bytes = n * k // 2 + sz.numel() * 2
        copies = max(2, min(64, -(-4 * l2 // weight_bytes)))
        packs = [packed.clone() for _ in range(copies)]
        szs = [sz.clone() for _ in range(copies)]
        # Check: torch's kernel against a bf16 matmul of the same dequantized weight.
        w = ((q.float() - 8) * scales.float().t().repeat_interleave(g, dim=1) +
             zeros.float().t().repeat_interleave(g, dim=1)).to(torch.bfloat16)
        for m in ms:
            x = torch.randn(m, k, device="cuda", generator=gen).to(torch.bfloat16)
            y = torch._weight_int4pack_mm(x, packed, g, sz)
            ref = x.float() @ w.float().t()
            err = ((y.float() - ref).norm() / ref.norm()).item()
            assert err < 2e-2, f"torch int4 result off by {err} at M={m} N={n} K={k}"
            calls = 20 if m < 512 else 5
            t = median_seconds(lambda i: torch._weight_int4pack_mm(x, packs[i % copies], g, szs[i % copies]),
                               calls=calls)
            flops = 2 * m * n * k
            io = m * k * 2 + m * n * 2
            line = f"{m:>5} {n:>6} {k:>6} | {t * 1e6:>13.1f} {flops / t / 1e12:>8.1f} {(weight_bytes + io) / t / 1e9:>6.0f} | "
            r = afq.get((m, n, k))
            if r:
                ta = r["time_us"] * 1e-6
                line += f"{r['time_us']:>8.1f} {flops / ta / 1e12:>8.1f} {r['gbps']:>6.0f} | {t / ta:>10.2f}x"
            else:
                line += f"{'-':>8} {'-':>8} {'-':>6} | {'-':>11}"
            print(line, flush=True)
        del packs, szs, w


if __name__ == "__main__":
    main()
