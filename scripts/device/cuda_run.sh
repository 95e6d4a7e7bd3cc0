#!/usr/bin/env bash
# The CUDA helper's one script on the GPU machine: configure + build (cuda_test and afq only),
# the GPU tests, compute-sanitizer memcheck on a small case, the benchmarks (afq bench qmm
# --device cuda, table and --json) and PyTorch's int4 kernel beside them. Everything is logged
# under $OUT. Carry .devdeps (Highway, PCRE2: ../shared/device/fetch-debs.sh).
#   STAGES="build test sanitize bench torch" scripts/device/cuda_run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/afq-out}
mkdir -p "$OUT"
STAGES=${STAGES:-"build test sanitize bench torch"}
BUILD=build-device
afq=$BUILD/afq
has() { [[ " $STAGES " == *" $1 "* ]]; }
section() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

deps=$PWD/.devdeps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig:$deps/share/pkgconfig
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}

# This copy is thrown away after the run: join src/cuda and tests/cuda to the build here, which
# the committed area lists leave out until the kernels are verified.
sed -i 's/^set(AFQ_AREAS io quant cpu text/set(AFQ_AREAS io quant cpu cuda text/' src/CMakeLists.txt
sed -i 's/^foreach(area core io quant cpu text/foreach(area core io quant cpu cuda text/' tests/CMakeLists.txt

section machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
nvcc --version | tail -2

if has build; then
  section build
  cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DAFQ_CUDA=ON -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a-real}" -DAFQ_BUILD_BENCH=OFF >"$OUT/configure.log" 2>&1 ||
    { tail -30 "$OUT/configure.log"; exit 1; }
  cmake --build $BUILD --target cuda_test afq_cli -j16 >"$OUT/build.log" 2>&1 || { grep -B2 -A8 -E "error|FAILED" "$OUT/build.log" | head -80; exit 1; }
  grep -E "spill|warning" "$OUT/build.log" | sort | uniq | head -20
fi

if has test; then
  section tests
  $BUILD/cuda_test 2>&1 | tee "$OUT/cuda_test.log" | grep -vE "^\[ +(RUN|OK) " | tail -25
fi

if has sanitize; then
  section compute-sanitizer memcheck
  compute-sanitizer --tool memcheck --error-exitcode 9 $BUILD/cuda_test \
    --gtest_filter='*Sanitizer*:*Rejects*:*FastPathsDoNot*' >"$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer exit code $?"; tail -6 "$OUT/sanitizer.log"
fi

if has bench; then
  section "bench: decode (M=1, 8) at 2, 3, 4, 8 bits, group 64"
  shapes=(--n 4096,14336,8192,28672 --k 14336,4096,8192,8192)
  for bits in 4 2 3 8; do
    $afq bench qmm --device cuda --m 1,8 "${shapes[@]}" --bits $bits --group-size 64 | tee -a "$OUT/bench_decode.txt"
  done
  section "bench: prompts (M=16..4096), 4 bits group 64"
  $afq bench qmm --device cuda --m 16,512,1024,2048,4096 "${shapes[@]}" --bits 4 --group-size 64 | tee "$OUT/bench_prompt.txt"
  $afq bench qmm --device cuda --m 1,16,512,1024,2048,4096 "${shapes[@]}" --bits 4 --group-size 64 --json >"$OUT/bench_b4.jsonl"
fi

if has torch; then
  section "torch int4 beside afq (4 bits, group 64)"
  PYTHONUNBUFFERED=1 python3 bench/torch_int4.py --afq-json "$OUT/bench_b4.jsonl" 2>&1 | tee "$OUT/torch_int4.txt"
fi
