#!/usr/bin/env python3
"""afq_torch's operators against the format's rules (../shared/spec: each row one little-endian bit
stream, w = scale * q + bias in float32) and against transformers' own _affine_quantize_tensor and
_affine_dequantize_tensor + F.linear, on the CPU and on CUDA: every bits x group size x dtype, M = 1, 7,
64 and 512 (the GEMV, the fused GEMM and dequantize + cuBLAS on the GPU); uint32 and int32 weights;
the error messages; meta tensors, torch.library.opcheck and torch.compile(fullgraph=True).

Plain Python, no pytest needed:
    PYTHONPATH=build-torch/python python3 torch-ext/tests/test_ops.py [--json FILE] [--quick]
Prints each failure and closes with the line 'N passed, N failed'; exits 1 on a failure.
"""
import argparse
import json
import sys
import time
import traceback

import torch
import torch.nn.functional as F

import afq_torch
from afq_torch import ops

BITS = [2, 3, 4, 5, 6, 8]
GROUP_SIZES = [32, 64, 128]
DTYPES = [torch.bfloat16, torch.float16, torch.float32]
MS = [1, 7, 64, 512]
N, K = 384, 512
# Unit roundoff of each dtype.
UNIT = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11, torch.float32: 2.0**-24}
TRANSFORMERS_BITS = (2, 4, 8)  # transformers' packing (32 // bits values a word) is the bit stream only for these


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []
        self.notes = {}

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(f"{name}: {detail}")
            print(f"FAIL {name}: {detail}", flush=True)

    def run(self, name, fn):
        """Runs fn (which makes its own checks); an exception is one failure."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report and go on
            self.check(name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")


def to_device(t, device):
    """Moves a tensor, uint32 ones through an int32 view (torch.uint32 supports few operations)."""
    if t.dtype == torch.uint32:
        return t.view(torch.int32).to(device).view(torch.uint32)
    return t.to(device)


def spec_codes(words, k, bits):
    """q [N, K] (int64) of packed words [N, K * bits / 32]: element i at bits [i*bits, (i+1)*bits) of the row."""
    w = words.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    following = torch.cat([w[:, 1:], torch.zeros_like(w[:, :1])], dim=1)
    window = w | (following << 32)  # bits [32 j, 32 j + 64) of the row; the wrap past bit 63 is never read
    position = torch.arange(k, device=w.device) * bits
    return (window[:, position // 32] >> (position % 32)) & ((1 << bits) - 1)


def spec_dequantize(words, scales, qbiases, group_size, bits):
    """W [N, K] float32: a multiply, then an add, per element (what afq and transformers compute)."""
    n = words.shape[0]
    k = words.shape[1] * 32 // bits
    q = spec_codes(words, k, bits).to(torch.float32).reshape(n, k // group_size, group_size)
    return (q * scales.float().unsqueeze(-1) + qbiases.float().unsqueeze(-1)).reshape(n, k)


def within_steps(w, w32, scales, qbiases, group_size, bits, steps):
    """Each dequantized value within `steps` steps of the weight (half a step for minmax; one for mlx,
    whose snapped scale can leave the far edge of a group one step beyond the grid), plus what rounding
    the scale and bias to the weight's dtype moves it (the codes come from the float32 scale and bias)."""
    u = UNIT[w.dtype]
    step = scales.float().abs().repeat_interleave(group_size, dim=1)
    bias = qbiases.float().abs().repeat_interleave(group_size, dim=1)
    slack = step * (steps + 2**bits * u) + 2 * u * (w.float().abs() + bias) + 1e-6
    return bool(((w32 - w.float()).abs() <= slack).all())


def error_bound(x, w32, y_exact, dtype):
    """|y - x @ W^T| allowed per element: the output's rounding, W rounded to x's dtype (the tensor-core
    and cuBLAS paths), and float32 accumulation over K, each times 2."""
    magnitude = x.double().abs() @ w32.double().abs().T
    u = UNIT[dtype]
    w_rounding = 0.0 if dtype == torch.float32 else u
    return 2 * (u * y_exact.abs() + (w_rounding + x.shape[-1] * 2.0**-24) * magnitude) + 1e-30


def test_every_combination(checks, devices, transformers_mq, quick):
    torch.manual_seed(0)
    bits_list = [4] if quick else BITS
    groups = [64] if quick else GROUP_SIZES
    worst = {}
    for bits in bits_list:
        for group_size in groups:
            for dtype in DTYPES:
                name = f"b{bits} g{group_size} {str(dtype)[6:]}"
                w = (torch.randn(N, K) * 0.05).to(dtype)
                w[3, 7] = 0.9  # an outlier, so that groups differ in scale
                words, scales, qbiases = ops.affine_quantize(w, group_size, bits, "minmax")
                checks.check(f"{name} quantize dtypes", words.dtype == torch.uint32 and scales.dtype == dtype
                             and qbiases.dtype == dtype, f"{words.dtype} {scales.dtype} {qbiases.dtype}")
                checks.check(f"{name} quantize shapes", tuple(words.shape) == (N, K * bits // 32)
                             and tuple(scales.shape) == (N, K // group_size) == tuple(qbiases.shape),
                             f"{tuple(words.shape)} {tuple(scales.shape)} {tuple(qbiases.shape)}")
                w32 = spec_dequantize(words, scales, qbiases, group_size, bits)
                checks.check(f"{name} quantize error", within_steps(w, w32, scales, qbiases, group_size, bits, 0.5),
                             f"max {(w32 - w.float()).abs().max().item():.3g}")
                if transformers_mq is not None and bits in TRANSFORMERS_BITS:
                    tw, ts, tb = transformers_mq._affine_quantize_tensor(w, group_size, bits)
                    checks.check(f"{name} quantize == transformers", torch.equal(words.view(torch.int32), tw.view(torch.int32))
                                 and torch.equal(scales, ts.to(dtype)) and torch.equal(qbiases, tb.to(dtype)),
                                 "words, scales or qbiases differ")
                    tdeq = transformers_mq._affine_dequantize_tensor(words, scales, qbiases, group_size, bits)
                    checks.check(f"{name} spec dequantize == transformers", torch.equal(tdeq, w32), "differ")
                mlx = ops.affine_quantize(w, group_size, bits, "mlx")
                checks.check(f"{name} quantize mlx error", within_steps(w, spec_dequantize(*mlx, group_size, bits),
                                                                        *mlx[1:], group_size, bits, 1.0), "")
                for device in devices:
                    dname = f"{name} {device}"
                    wd, sd, bd = (to_device(t, device) for t in (words, scales, qbiases))
                    deq = ops.affine_dequantize(wd, sd, bd, group_size, bits)
                    checks.check(f"{dname} dequantize exact", deq.dtype == dtype and torch.equal(deq.cpu(), w32.to(dtype)),
                                 f"dtype {deq.dtype}, max diff {(deq.cpu().float() - w32).abs().max().item():.3g}")
                    deq_i32 = ops.affine_dequantize(wd.view(torch.int32), sd, bd, group_size, bits)
                    checks.check(f"{dname} dequantize int32 words", torch.equal(deq_i32, deq), "differs from uint32")
                    for m in MS:
                        x = torch.randn(m, K).to(dtype)
                        y_exact = x.double() @ w32.double().T
                        bound = error_bound(x, w32, y_exact, dtype)
                        y = ops.affine_qmm_t(x.to(device), wd, sd, bd, group_size, bits)
                        ok_meta = y.dtype == dtype and tuple(y.shape) == (m, N) and y.device.type == device
                        checks.check(f"{dname} M={m} qmm dtype/shape", ok_meta, f"{y.dtype} {tuple(y.shape)} {y.device}")
                        err = (y.cpu().double() - y_exact).abs()
                        ratio = (err / bound).max().item()
                        worst[(device, str(dtype)[6:])] = max(worst.get((device, str(dtype)[6:]), 0.0), ratio)
                        checks.check(f"{dname} M={m} qmm within bound", ratio <= 1.0,
                                     f"max err/bound {ratio:.3g}, max err {err.max().item():.3g}")
                        if bits in TRANSFORMERS_BITS and transformers_mq is not None:
                            # transformers' reference: _affine_dequantize_tensor + F.linear in float32.
                            y_tr = F.linear(x.float(), tdeq).double()
                            ratio_tr = ((y.cpu().double() - y_tr).abs() / (bound + x.shape[-1] * 2.0**-24 *
                                        (x.double().abs() @ w32.double().abs().T))).max().item()
                            checks.check(f"{dname} M={m} qmm vs transformers F.linear", ratio_tr <= 1.0, f"{ratio_tr:.3g}")
                        if m == 7:
                            y_i32 = ops.affine_qmm_t(x.to(device), wd.view(torch.int32), sd, bd, group_size, bits)
                            checks.check(f"{dname} M=7 qmm int32 words", torch.equal(y_i32, y), "differs from uint32")
                            x3 = x.reshape(1, m, K).expand(2, m, K).to(device)  # leading dims, not contiguous
                            y3 = ops.affine_qmm_t(x3, wd, sd, bd, group_size, bits)
                            checks.check(f"{dname} M=7 qmm [2, 7, K]", tuple(y3.shape) == (2, m, N)
                                         and bool(((y3[1].cpu().double() - y_exact).abs() <= bound).all()),
                                         f"{tuple(y3.shape)}")
    checks.notes["worst_error_over_bound"] = {f"{d} {t}": round(r, 4) for (d, t), r in worst.items()}


def test_edges(checks, devices):
    torch.manual_seed(1)
    w = torch.randn(N, K, dtype=torch.bfloat16)
    words, scales, qbiases = ops.affine_quantize(w, 64, 4, "mlx")
    for device in devices:
        wd, sd, bd = (to_device(t, device) for t in (words, scales, qbiases))
        y = ops.affine_qmm_t(torch.empty(0, K, dtype=torch.bfloat16, device=device), wd, sd, bd, 64, 4)
        checks.check(f"{device} M=0", tuple(y.shape) == (0, N), f"{tuple(y.shape)}")
        # x at an odd offset (not 16-byte aligned): the binding copies it for the CUDA kernels.
        big = torch.randn(3 * K + 1, dtype=torch.bfloat16, device=device)
        x = big[1:].reshape(3, K)
        y = ops.affine_qmm_t(x, wd, sd, bd, 64, 4)
        y_ref = ops.affine_qmm_t(x.clone(), wd, sd, bd, 64, 4)
        checks.check(f"{device} misaligned x", torch.equal(y, y_ref), "differs from an aligned copy")
        # Scales in float32 with bf16 activations (checkpoints cast on load).
        y32 = ops.affine_qmm_t(x.clone(), wd, sd.float(), bd.float(), 64, 4)
        checks.check(f"{device} float32 scales", torch.allclose(y32.float(), y_ref.float(), rtol=2e-2, atol=1e-2),
                     f"max diff {(y32.float() - y_ref.float()).abs().max().item():.3g}")
    # CUDA input to quantize: the result comes back on the device and equals the CPU's.
    if "cuda" in devices:
        q_cuda = ops.affine_quantize(w.cuda(), 64, 4, "mlx")
        checks.check("quantize of a CUDA weight", all(t.device.type == "cuda" for t in q_cuda)
                     and torch.equal(q_cuda[0].view(torch.int32).cpu(), words.view(torch.int32))
                     and torch.equal(q_cuda[1].cpu(), scales), "")
    # Meta tensors (the fake implementations).
    meta = dict(device="meta")
    y = ops.affine_qmm_t(torch.empty(5, 3, K, dtype=torch.float16, **meta), torch.empty(N, K // 8, dtype=torch.uint32, **meta),
                         torch.empty(N, K // 64, dtype=torch.float16, **meta), torch.empty(N, K // 64, dtype=torch.float16, **meta), 64, 4)
    checks.check("meta affine_qmm_t", tuple(y.shape) == (5, 3, N) and y.dtype == torch.float16, f"{tuple(y.shape)} {y.dtype}")
    q = ops.affine_quantize(torch.empty(N, K, dtype=torch.bfloat16, **meta), 32, 3, "mlx")
    checks.check("meta affine_quantize", [tuple(t.shape) for t in q] == [(N, K * 3 // 32), (N, K // 32), (N, K // 32)]
                 and q[0].dtype == torch.uint32 and q[1].dtype == torch.bfloat16, f"{[tuple(t.shape) for t in q]}")
    d = ops.affine_dequantize(q[0], q[1], q[2], 32, 3)
    checks.check("meta affine_dequantize", tuple(d.shape) == (N, K) and d.dtype == torch.bfloat16, f"{tuple(d.shape)}")


def test_errors(checks, devices):
    w = torch.randn(N, K, dtype=torch.bfloat16)
    words, scales, qbiases = ops.affine_quantize(w, 64, 4, "minmax")
    x = torch.randn(3, K, dtype=torch.bfloat16)
    nan = w.clone()
    nan[0, 5] = float("nan")
    qmm, quantize, dequantize = ops.affine_qmm_t, ops.affine_quantize, ops.affine_dequantize
    cases = [
        ("bits", lambda: qmm(x, words, scales, qbiases, 64, 7),
         "afq::affine_qmm_t: bits must be one of 2, 3, 4, 5, 6, 8, got 7"),
        ("group size", lambda: qmm(x, words, scales, qbiases, 48, 4),
         "afq::affine_qmm_t: group_size must be one of 32, 64, 128, got 48"),
        ("weight dtype", lambda: qmm(x, torch.zeros(N, 64, dtype=torch.float16), scales, qbiases, 64, 4),
         "afq::affine_qmm_t: weight must be torch.uint32 or torch.int32 (packed words), got torch.float16"),
        ("weight rank", lambda: qmm(x, words.view(torch.int32).reshape(N, 64, 1), scales, qbiases, 64, 4),
         "afq::affine_qmm_t: weight must be 2-D [N, K * bits / 32], got shape [384, 64, 1]"),
        ("words per row", lambda: qmm(x, words, scales, qbiases, 64, 3),
         "afq::affine_qmm_t: weight has 64 words per row, not a whole number of 3-bit values (bits=3)"),
        ("K and group size", lambda: qmm(x, torch.zeros(N, 68, dtype=torch.int32), scales, qbiases, 64, 4),
         "afq::affine_qmm_t: K = 544 (68 words per row at bits=4) must be a multiple of group_size 64"),
        ("scales dtype", lambda: qmm(x, words, scales.to(torch.int32), qbiases, 64, 4),
         "afq::affine_qmm_t: scales must be torch.float32, torch.float16 or torch.bfloat16, got torch.int32"),
        ("qbiases dtype", lambda: qmm(x, words, scales, qbiases.float(), 64, 4),
         "afq::affine_qmm_t: qbiases must have the dtype of scales (torch.bfloat16), got torch.float32"),
        ("scales shape", lambda: qmm(x, words, scales[:, :4], qbiases, 64, 4),
         "afq::affine_qmm_t: scales must have shape [N, K / group_size] = [384, 8], got [384, 4]"),
        ("qbiases shape", lambda: qmm(x, words, scales, qbiases[:5], 64, 4),
         "afq::affine_qmm_t: qbiases must have shape [N, K / group_size] = [384, 8], got [5, 8]"),
        ("x dtype", lambda: qmm(x.to(torch.int64), words, scales, qbiases, 64, 4),
         "afq::affine_qmm_t: x must be torch.float32, torch.float16 or torch.bfloat16, got torch.int64"),
        ("x shape", lambda: qmm(x[:, :256], words, scales, qbiases, 64, 4),
         "afq::affine_qmm_t: x must have shape [..., K] with K = 512 (from weight and bits), got [3, 256]"),
        ("quantize method", lambda: quantize(w, 64, 4, "fancy"),
         'afq::affine_quantize: method must be "mlx" or "minmax", got "fancy"'),
        ("quantize bits", lambda: quantize(w, 64, 7, "mlx"),
         "afq::affine_quantize: bits must be one of 2, 3, 4, 5, 6, 8, got 7"),
        ("quantize rank", lambda: quantize(w[0], 64, 4, "mlx"),
         "afq::affine_quantize: w must be 2-D [N, K], got shape [512]"),
        ("quantize K", lambda: quantize(w[:, :100], 64, 4, "mlx"),
         "afq::affine_quantize: w has K = 100 columns, not a multiple of group_size 64"),
        ("quantize dtype", lambda: quantize(w.to(torch.int32), 64, 4, "mlx"),
         "afq::affine_quantize: w must be torch.float32, torch.float16 or torch.bfloat16, got torch.int32"),
        ("quantize NaN", lambda: quantize(nan, 64, 4, "mlx"),
         "afq::affine_quantize: NaN in the weight at [0, 5]; cannot quantize"),
        ("dequantize group size", lambda: dequantize(words, scales, qbiases, 48, 4),
         "afq::affine_dequantize: group_size must be one of 32, 64, 128, got 48"),
    ]
    if "cuda" in devices:
        cases.append(("devices", lambda: qmm(x.cuda(), words, scales, qbiases, 64, 4),
                      "afq::affine_qmm_t: x is on cuda:0 but weight is on cpu; all tensors must be on one device"))
        cases.append(("cuda bits", lambda: qmm(x.cuda(), to_device(words, "cuda"), scales.cuda(), qbiases.cuda(), 64, 5),
                      "afq::affine_qmm_t: weight has 64 words per row, not a whole number of 5-bit values (bits=5)"))
    for name, call, expected in cases:
        try:
            call()
            checks.check(f"error {name}", False, "no exception")
        except RuntimeError as e:
            first_line = str(e).splitlines()[0] if str(e) else ""
            checks.check(f"error {name}", expected in str(e), f"expected {expected!r}, got {first_line!r}")


def test_opcheck(checks, devices):
    torch.manual_seed(2)
    for device in devices:
        w = torch.randn(256, 256, dtype=torch.bfloat16, device=device)
        words, scales, qbiases = ops.affine_quantize(w, 64, 4, "mlx")
        x = torch.randn(7, 256, dtype=torch.bfloat16, device=device)
        cases = {
            "affine_qmm_t": (ops.affine_qmm_t.default, (x, words, scales, qbiases, 64, 4)),
            "affine_qmm_t grad": (ops.affine_qmm_t.default, (x.clone().requires_grad_(), words, scales, qbiases, 64, 4)),
            "affine_dequantize": (ops.affine_dequantize.default, (words, scales, qbiases, 64, 4)),
            "affine_quantize": (ops.affine_quantize.default, (w, 64, 4, "minmax")),
        }
        for name, (op, args) in cases.items():
            def run(op=op, args=args, name=name):
                result = torch.library.opcheck(op, args)
                bad = {k: v for k, v in result.items() if v != "SUCCESS"}
                checks.check(f"opcheck {name} {device}", not bad, str(bad))
            checks.run(f"opcheck {name} {device}", run)


def test_backward(checks, devices):
    torch.manual_seed(3)
    for device in devices:
        w = torch.randn(128, 256, dtype=torch.float32, device=device)
        words, scales, qbiases = ops.affine_quantize(w, 64, 8, "mlx")
        x = torch.randn(5, 256, dtype=torch.float32, device=device, requires_grad=True)
        afq_torch.affine_qmm_t(x, words, scales, qbiases, 64, 8).square().sum().backward()
        w32 = ops.affine_dequantize(words, scales, qbiases, 64, 8)
        x_ref = x.detach().clone().requires_grad_()
        F.linear(x_ref, w32).square().sum().backward()
        # Relative to the whole gradient, which the forward's error reaches through y (the gradient
        # of sum(y^2) is 2 y W). The backward itself is exact (dequantize, then a matmul); the bound
        # is the forward's: float32 rounding on CUDA (float32 x is dequantized and multiplied), and
        # on the CPU, where M <= 8 takes the int8-activation GEMV, its relative error (about 4e-5).
        relative = ((x.grad - x_ref.grad).norm() / x_ref.grad.norm()).item()
        bound = 1e-5 if device == "cuda" else 5e-4
        checks.check(f"backward {device}", relative < bound, f"relative error {relative:.3g} (bound {bound:g})")


def test_compile(checks, devices):
    torch.manual_seed(4)

    def layer(x, words, scales, qbiases):
        return F.silu(afq_torch.affine_qmm_t(x, words, scales, qbiases, 64, 4)) * 2

    def roundtrip(w):
        words, scales, qbiases = afq_torch.affine_quantize(w, 64, 4, "mlx")
        return afq_torch.affine_dequantize(words, scales, qbiases, 64, 4)

    for device in devices:
        def run(device=device):
            torch._dynamo.reset()
            w = torch.randn(256, 512, dtype=torch.bfloat16, device=device)
            words, scales, qbiases = ops.affine_quantize(w, 64, 4, "mlx")
            compiled = torch.compile(layer, fullgraph=True, dynamic=True)
            for m in (1, 7, 33):
                x = torch.randn(m, 512, dtype=torch.bfloat16, device=device)
                got, want = compiled(x, words, scales, qbiases), layer(x, words, scales, qbiases)
                checks.check(f"compile fullgraph {device} M={m}", torch.allclose(got.float(), want.float(), rtol=2e-2, atol=2e-2),
                             f"max diff {(got.float() - want.float()).abs().max().item():.3g}")
            got = torch.compile(roundtrip, fullgraph=True)(w)
            checks.check(f"compile quantize+dequantize {device}", torch.equal(got, roundtrip(w)), "differs from eager")
        checks.run(f"compile {device}", run)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="4 bits, group 64 only")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference must be float32
    devices = ["cpu"]
    if torch.cuda.is_available() and torch._C._dispatch_has_kernel_for_dispatch_key("afq::affine_qmm_t", "CUDA"):
        devices.append("cuda")
    try:
        from transformers.integrations import metal_quantization as transformers_mq
    except ImportError:
        transformers_mq = None
    checks = Checks()
    print(f"torch {torch.__version__}, devices {devices}, transformers reference "
          f"{'yes' if transformers_mq is not None else 'no (not installed)'}", flush=True)
    timings = {}
    for name, fn in [("every combination", lambda: test_every_combination(checks, devices, transformers_mq, args.quick)),
                     ("edges", lambda: test_edges(checks, devices)),
                     ("errors", lambda: test_errors(checks, devices)),
                     ("opcheck", lambda: test_opcheck(checks, devices)),
                     ("backward", lambda: test_backward(checks, devices)),
                     ("compile", None if args.no_compile else lambda: test_compile(checks, devices))]:
        if fn is None:
            continue
        start = time.time()
        checks.run(name, fn)
        timings[name] = round(time.time() - start, 1)
        print(f"[{name}] done in {timings[name]} s, {checks.passed} passed, {len(checks.failed)} failed so far", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "devices": devices, "passed": checks.passed,
                       "failed": checks.failed, "notes": checks.notes, "seconds": timings}, f, indent=2)
    print("worst error / bound:", checks.notes.get("worst_error_over_bound"))
    print(f"{checks.passed} passed, {len(checks.failed)} failed")
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
