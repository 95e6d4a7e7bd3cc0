#!/usr/bin/env bash
# Where a GPU decode step's time goes: Nsight Compute's duration of every kernel of a few decode
# steps of a random model of a real shape, launched one by one (AFQ_CUDA_GRAPHS=0, so that each
# kernel is its own launch), summed per kernel over the steps. Needs ncu (Firecracker machines).
#   scripts/device/profile_decode.sh [SHAPE...]     (default: llama-3.2-1b llama-3-8b)
# Builds build-device/afq when it is missing (carry .devdeps). CSVs and the summary go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/afq-out}
mkdir -p "$OUT"
deps=$PWD/.devdeps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig:$deps/share/pkgconfig
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
afq=build-device/afq
if [[ ! -x $afq ]]; then
  cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DAFQ_CUDA=ON -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_CUDA_ARCHITECTURES=90a-real -DAFQ_BUILD_BENCH=OFF >"$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
  cmake --build build-device --target afq_cli -j16 >"$OUT/build.log" 2>&1 || { grep -A5 error "$OUT/build.log" | head -40; exit 1; }
fi
steps=4
for shape in "${@:-llama-3.2-1b llama-3-8b}"; do
  for s in $shape; do
    dir=/tmp/afq-profile-$s
    # A prompt of 8 tokens: its kernels (M = 8) are told apart from the decode steps' (M = 1) by grid.
    $afq bench generate --device cuda --shape "$s" --bits 4 --group-size 64 --prompt-tokens 8 --decode-tokens 1 \
      --dir "$dir" >/dev/null 2>&1
    AFQ_CUDA_GRAPHS=0 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
      $afq bench generate --device cuda --shape "$s" --bits 4 --group-size 64 --prompt-tokens 8 \
      --decode-tokens $steps --dir "$dir" >"$OUT/ncu_$s.csv" 2>"$OUT/ncu_$s.err"
    echo "=== $s: $(grep -c gpu__time_duration "$OUT/ncu_$s.csv") kernels profiled"
    python3 - "$OUT/ncu_$s.csv" "$steps" <<'PY'
import csv, sys, collections
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if l.startswith('"')) if r.get("Metric Name") == "gpu__time_duration.sum"]
steps = int(sys.argv[2])
# The decode steps are the last kernels, each ending in an argmax, all with the same kernels.
arg = [i for i, r in enumerate(rows) if "argmax" in r["Kernel Name"]]
per_step = arg[-1] - arg[-2]
first = len(rows) - steps * per_step
total = collections.defaultdict(float); count = collections.Counter()
for r in rows[first:]:
    name = r["Kernel Name"].split("(")[0][:70]
    key = (name, r.get("Grid Size", ""), r.get("Block Size", ""))
    v = float(r["Metric Value"].replace(",", "")); unit = r["Metric Unit"]
    v *= {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}[unit]
    total[key] += v; count[key] += 1
all_us = sum(total.values())
print(f"per decode step: {all_us / steps:.1f} us of kernel time in {sum(count.values()) // steps} kernels")
for key, us in sorted(total.items(), key=lambda kv: -kv[1])[:25]:
    print(f"{us / steps:9.1f} us/step {count[key] // steps:4d}x  {key[0]} grid {key[1]} block {key[2]}")
PY
  done
done
