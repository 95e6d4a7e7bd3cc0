#!/usr/bin/env bash
# The CUDA kernels' one script on the GPU machine: configure + build (cuda_test and afq only),
# the GPU tests, compute-sanitizer memcheck on a small case, the benchmarks (afq bench qmm
# --device cuda, table and --json) and PyTorch's int4 kernel beside them. Everything is logged
# under $OUT. Carry .devdeps (Highway, PCRE2: ../shared/device/fetch-debs.sh).
#   STAGES="build test sanitize bench torch" scripts/device/cuda_run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/afq-out}
mkdir -p "$OUT"
STAGES=${STAGES:-"build test sanitize bench torch"}  # also: paths, tune, profile, cpu
BUILD=build-device
afq=$BUILD/afq
has() { [[ " $STAGES " == *" $1 "* ]]; }
section() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

deps=$PWD/.devdeps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig:$deps/share/pkgconfig
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}

# The issue's shapes: (N, K) pairs.
shapes=(--n 4096,14336,8192,28672 --k 14336,4096,8192,8192)

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
  for bits in 4 2 3 8; do
    $afq bench qmm --device cuda --m 1,8 "${shapes[@]}" --bits $bits --group-size 64 | tee -a "$OUT/bench_decode.txt"
  done
  section "bench: prompts (M=16..4096), 4 bits group 64"
  $afq bench qmm --device cuda --m 16,512,1024,2048,4096 "${shapes[@]}" --bits 4 --group-size 64 | tee "$OUT/bench_prompt.txt"
  $afq bench qmm --device cuda --m 1,16,512,1024,2048,4096 "${shapes[@]}" --bits 4 --group-size 64 --json >"$OUT/bench_b4.jsonl"
fi

if has paths; then
  section "paths: the decode GEMVs side by side (AFQ_CUDA_QMM=qmv|int8|mma), group 64"
  for bits in 4 8; do
    for path in ${PATHS:-qmv int8 mma}; do
      echo "bits $bits, AFQ_CUDA_QMM=$path"
      AFQ_CUDA_QMM=$path $afq bench qmm --device cuda --m ${PATH_ROWS:-1,2,4} "${shapes[@]}" --bits $bits --group-size 64 |
        tail -n +4 | tee -a "$OUT/paths.txt"
    done
  done
fi

if has tune; then
  section "tune: fused GEMM against dequantize + cuBLAS (4 bits, group 64)"
  for path in fused dequant; do
    echo "AFQ_CUDA_QMM=$path"
    AFQ_CUDA_QMM=$path $afq bench qmm --device cuda --m 16,32,64,96,128,256,512,2048 "${shapes[@]}" --bits 4 \
      --group-size 64 | tail -n +5 | tee -a "$OUT/tune.txt"
  done
fi

if has profile; then
  section "profile: Nsight Compute on one launch of each kernel family (4 bits, group 64)"
  if command -v ncu >/dev/null; then
    sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats"
    AFQ_CUDA_QMM=qmv ncu $sections -k regex:qmv_kernel -c 1 $afq bench qmm --device cuda --m 1 --n 4096 --k 14336 \
      --bits 4 --group-size 64 --iterations 3 >"$OUT/ncu_qmv.txt" 2>&1
    for m in 1 8; do
      AFQ_CUDA_QMM=mma ncu $sections -k regex:qmv_mma -c 1 $afq bench qmm --device cuda --m $m --n 4096 --k 14336 \
        --bits 4 --group-size 64 --iterations 3 >"$OUT/ncu_mma_m$m.txt" 2>&1
    done
    AFQ_CUDA_QMM=fused ncu $sections -k regex:qmm_sm80_kernel -c 1 $afq bench qmm --device cuda --m 16 --n 4096 \
      --k 14336 --bits 4 --group-size 64 --iterations 3 >"$OUT/ncu_fused.txt" 2>&1
    AFQ_CUDA_QMM=dequant ncu $sections -k regex:dequantize_kernel -c 1 $afq bench qmm --device cuda --m 512 \
      --n 4096 --k 14336 --bits 4 --group-size 64 --iterations 3 >"$OUT/ncu_dequant.txt" 2>&1
    for f in qmv mma_m1 mma_m8 fused dequant; do
      echo "--- $f"; grep -E "Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Stall|Issue Slots Busy|One or More Eligible" "$OUT/ncu_$f.txt" | head -14
    done
  else
    echo "ncu not found"
  fi
fi

if has profile_int8; then
  section "profile: the int8 GEMV's SASS (bf16, 4 bits, M=1): instructions by opcode"
  cuobjdump -sass -fun '_ZN3afq4cuda15qmv_int8_kernelI13__nv_bfloat16S2_Li4ELi1EEEvNS0_10QmmProblemE' \
    $BUILD/src/cuda/CMakeFiles/afq_cuda.dir/qmv_int8_b4.cu.o >"$OUT/sass_int8.txt" 2>&1
  grep -oE "^ +/\*[0-9a-f]{4}\*/ +[A-Z][A-Z0-9_.]*" "$OUT/sass_int8.txt" | awk '{print $2}' | cut -d. -f1 | sort | uniq -c |
    sort -rn | head -25 | tr '\n' ' '; echo; echo "instructions: $(grep -cE '^ +/\*[0-9a-f]{4}\*/' "$OUT/sass_int8.txt")"
  section "profile: Nsight Compute on the int8 GEMV (M=1, 4 bits, group 64)"
  sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats"
  for shape in "4096 14336" "8192 8192" "28672 8192"; do
    set -- $shape
    AFQ_CUDA_QMM=int8 ncu $sections -k regex:qmv_int8 -c 1 $afq bench qmm --device cuda --m 1 --n $1 --k $2 \
      --bits 4 --group-size 64 --iterations 3 >"$OUT/ncu_int8_$1x$2.txt" 2>&1
    echo "--- $1 x $2"
    grep -E "Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy|Issue Slots Busy|One or More Eligible|Grid Size|Dynamic Shared|Warp Cycles Per Issued|Stall" "$OUT/ncu_int8_$1x$2.txt" | head -24
  done
fi

if has cpu; then
  section "CPU kernels on this machine's cores (afq bench qmm --device cpu, 4 bits group 64)"
  lscpu | grep -E "Model name|^CPU\(s\)|L3" | sed 's/  */ /g'
  $afq bench qmm --device cpu --m 1,8,128,512 --n 4096,14336,4096 --k 4096,4096,14336 --bits 4 --group-size 64 |
    tee "$OUT/bench_cpu.txt"
fi

if has torch; then
  section "torch int4 beside afq (4 bits, group 64)"
  PYTHONUNBUFFERED=1 python3 bench/torch_int4.py --afq-json "$OUT/bench_b4.jsonl" 2>&1 | tee "$OUT/torch_int4.txt"
fi
