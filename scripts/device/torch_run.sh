#!/usr/bin/env bash
# afq_torch on the GPU machine: build the PyTorch extension (torch-ext/) against the installed
# PyTorch, run its tests, then the transformers benchmark. Carry .devdeps (Highway, PCRE2:
# ../shared/device/fetch-debs.sh). Each stage fits one device call (10 minutes); results of the
# benchmark stages accumulate in build-torch/results, which stays on a warm machine, and every call
# prints the table of what is there last. Files under $OUT (at most 8).
#   STAGES="build test" scripts/device/torch_run.sh                 # about 5-8 minutes
#   STAGES="bench-cuda bench-cpu" scripts/device/torch_run.sh       # accuracy, memory, eager decode
#   STAGES="bench-compile" scripts/device/torch_run.sh              # decode with torch.compile (CUDA)
#   STAGES="build ops ab ab-compile" scripts/device/torch_run.sh    # the operator alone; decode A/B
# Stages: build test test-quick bench-cuda bench-cpu bench-compile ops ab ab-compile (default: build
# test bench-cuda). `ops` times the operator against F.linear (bench/torch_qmm_ops.py); `ab` and
# `ab-compile` decode with bf16 and afq in alternating rounds (bench/torch_decode_ab.py), eager and
# compiled, batches 1 and 8 (AB_MODELS, default "llama1b tinyshakes").
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/afq-torch-out}
mkdir -p "$OUT"
STAGES=${STAGES:-"build test bench-cuda"}
BUILD=build-torch
RESULTS=$BUILD/results
# A fresh machine has no build-torch/ (it is git-ignored, so it does not travel): build first.
[[ -f $BUILD/python/afq_torch/_afq_torch_ops.so ]] || [[ " $STAGES " == *" build "* ]] || STAGES="build $STAGES"
has() { [[ " $STAGES " == *" $1 "* ]]; }
section() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
status=0

deps=$PWD/.devdeps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig:$deps/share/pkgconfig
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export PYTHONPATH=$PWD/$BUILD/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONFAULTHANDLER=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TORCHINDUCTOR_CACHE_DIR=$PWD/$BUILD/inductor-cache  # compiled kernels reused by the next call
py=$(command -v python3)

section machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$py -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'

if has build; then
  section build
  torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
  # PyTorch's CMake config looks for cuDNN; point it at the pip wheel's copy when there is one.
  cudnn=$($py -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  cudnn_args=()
  if [[ -n "$cudnn" && -d "$cudnn/include" ]]; then
    lib=$(ls "$cudnn"/lib/libcudnn.so* 2>/dev/null | head -1)
    cudnn_args=(-DCUDNN_ROOT="$cudnn" -DCUDNN_INCLUDE_DIR="$cudnn/include" -DCUDNN_INCLUDE_PATH="$cudnn/include"
                -DCUDNN_LIBRARY="$lib" -DCUDNN_LIBRARY_PATH="$lib")
  fi
  # The system g++, as PyTorch expects (the GPU machine's CXX is a wrapper around it).
  cxx=${TORCH_EXT_CXX:-/usr/bin/g++}
  if [[ -f $BUILD/CMakeCache.txt ]] && ! grep -qE "CMAKE_CXX_COMPILER:(FILEPATH|STRING)=$cxx\$" $BUILD/CMakeCache.txt; then
    rm -rf $BUILD
  fi
  cmake -S torch-ext -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DAFQ_CUDA=ON \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="${cxx%++}cc" -DCMAKE_CUDA_HOST_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$deps;$torch_prefix" -DPython3_EXECUTABLE="$py" \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a-real}" "${cudnn_args[@]}" >"$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log"; exit 1; }
  grep -E "afq_torch:|afq: CUDA|PyTorch:|CUDA detected" "$OUT/build.log"
  start=$(date +%s)
  cmake --build $BUILD -j16 >>"$OUT/build.log" 2>&1 ||
    { grep -B2 -A12 -E "error|FAILED" "$OUT/build.log" | head -120; exit 1; }
  echo "extension built in $(( $(date +%s) - start )) s"
  if (( $(nm --defined-only $BUILD/python/afq_torch/_afq_torch_ops.so | grep -c "_ZNKSt11logic_error4whatEv") )); then
    echo "WARNING: the module carries its own libstdc++ (linked statically): errors will crash"; status=1
  fi
  grep -E "warning" "$OUT/build.log" | grep -v "^ninja" | sort | uniq | head -20
  # The afq CLI writes the `afq quantize --layout transformers` checkpoint of the benchmark (optional;
  # NO_CLI=1 skips it).
  if [[ -z ${NO_CLI:-} ]]; then
    cmake --build $BUILD --target afq_cli -j16 >>"$OUT/build.log" 2>&1 && echo "afq CLI built" ||
      echo "afq CLI did not build (see build.log); the benchmark falls back to .devcheck/ if carried"
  fi
  $py -c 'import afq_torch, torch; print("loaded:", torch.ops.afq.affine_qmm_t, "CUDA kernel:",
    torch._C._dispatch_has_kernel_for_dispatch_key("afq::affine_qmm_t", "CUDA"))' || status=1
fi

if has test || has test-quick; then
  section "tests: torch-ext/tests/test_ops.py"
  quick=(); has test-quick && quick=(--quick)
  $py torch-ext/tests/test_ops.py --json "$OUT/test_ops.json" "${quick[@]}" 2>&1 | tee "$OUT/tests.log"
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  section "tests: torch-ext/tests/test_transformers.py"
  $py torch-ext/tests/test_transformers.py --json "$OUT/test_transformers.json" 2>&1 | tee -a "$OUT/tests.log" |
    grep -vE "[A-Za-z]+Warning:|warnings\.warn\("
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
fi

bench() {  # bench NAME ARGS...: one run of bench/torch_transformers.py, logged
  local name=$1; shift
  section "bench: $name"
  $py bench/torch_transformers.py --results "$RESULTS" --no-summary "$@" 2>&1 | tee -a "$OUT/bench.log" |
    grep -E "^\[|Error|^transformers"
}
has bench-cuda && bench "CUDA: accuracy, memory, eager decode" --parts accuracy,memory,speed --devices cuda
has bench-cpu && bench "CPU: accuracy, eager decode" --parts accuracy,speed --devices cpu
has bench-compile && bench "CUDA: decode with torch.compile" --parts speed --devices cuda --compile
if has ops; then
  section "ops: bench/torch_qmm_ops.py"
  $py bench/torch_qmm_ops.py --devices cuda --m 1,8 2>&1 | tee -a "$OUT/ops.log"
fi
for stage in ab ab-compile; do
  has $stage || continue
  for model in ${AB_MODELS:-llama1b tinyshakes}; do
    section "$stage: bench/torch_decode_ab.py --model $model"
    flags=(); [[ $stage == ab-compile ]] && flags=(--compile)
    $py bench/torch_decode_ab.py --model "$model" --batches 1,8 --rounds "${AB_ROUNDS:-5}" "${flags[@]}" 2>&1 |
      tee -a "$OUT/ab.log" | grep -vE "[A-Za-z]+Warning:|warnings\.warn\("
    [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  done
done

section summary
for name in test_ops test_transformers; do
  [[ -f $OUT/$name.json ]] && $py -c 'import json, sys; d = json.load(open(sys.argv[1]))
print("%-18s %d passed, %d failed" % (sys.argv[2], d["passed"], len(d["failed"])))' "$OUT/$name.json" "$name"
done
if [[ -d $RESULTS ]]; then
  tar -czf "$OUT/results.tgz" -C $BUILD results
  $py bench/torch_transformers.py --summary --results "$RESULTS"
fi
exit $status
