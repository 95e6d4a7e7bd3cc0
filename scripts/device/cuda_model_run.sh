#!/usr/bin/env bash
# The CUDA forward pass's one script on the GPU machine (issue 6): configure + build, the model
# tests (ops and whole models against the CPU), compute-sanitizer on a few of them, afq generate
# --device cuda against --device cpu on the shipped models, perplexity on both, and afq bench
# generate --device cuda. Output is kept short (the caller sees the last 12k characters); full
# logs go under $OUT. Carry .devdeps (Highway, PCRE2: ../shared/device/fetch-debs.sh).
#   STAGES="build test sanitize generate bench" scripts/device/cuda_model_run.sh
# (also: qmm, the kernels' own tests; bench8b, a Llama-3-8B shape; batch, generate --batch-file on
# the GPU against each prompt alone; bench-batch, decode at batch 1 and 16 (BATCH_SHAPES) beside
# transformers bf16 (bench/transformers_generate.py) on the same shapes)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/afq-out}
mkdir -p "$OUT"
STAGES=${STAGES:-"build test sanitize generate bench"}  # also: qmm (the kernels' own tests), bench8b
BUILD=build-device
afq=$BUILD/afq
has() { [[ " $STAGES " == *" $1 "* ]]; }
section() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

deps=$PWD/.devdeps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig:$deps/share/pkgconfig
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}

section machine
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader

if has build; then
  section build
  cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DAFQ_CUDA=ON -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a-real}" -DAFQ_BUILD_BENCH=OFF >"$OUT/configure.log" 2>&1 ||
    { tail -30 "$OUT/configure.log"; exit 1; }
  cmake --build $BUILD --target cuda_model_test cuda_test model_test afq_cli -j16 >"$OUT/build.log" 2>&1 ||
    { grep -B2 -A8 -E "error|FAILED" "$OUT/build.log" | head -60; exit 1; }
  grep -E "spill|warning" "$OUT/build.log" | sort | uniq | head -10
  echo "built"
fi

if has test; then
  section "tests: cuda_model_test (ops and whole models against the CPU)"
  $BUILD/cuda_model_test >"$OUT/cuda_model_test.log" 2>&1
  echo "exit code $?"
  # Failures with their messages, the per-model error figures, the summary.
  grep -E "Failure|error|Expected|Which is|differ|element|\[  FAILED|\[  PASSED|\[  SKIPPED|\[ info" \
    "$OUT/cuda_model_test.log" | grep -v "^\[ RUN" | head -70
  section "tests: CPU model_test (unchanged behaviour)"
  $BUILD/model_test 2>&1 | tail -3
fi

if has qmm; then
  section "tests: cuda_test (the qmm kernels)"
  $BUILD/cuda_test 2>&1 | tail -4
fi

if has sanitize; then
  section "compute-sanitizer memcheck on ops and two models"
  compute-sanitizer --tool memcheck --error-exitcode 9 $BUILD/cuda_model_test \
    --gtest_filter='CudaEmbedding.*:CudaRmsNorm.*:CudaRope.*:CudaRopeQkStoreV.*:CudaStoreAtPosition.*:CudaArgmax.*:CudaElementwise.*:EveryFixture/GpuMatchesCpu.*/qwen3_qknorm:EveryFixture/GpuMatchesCpu.*/tinyshakes_5m_mlx_mixed_4_6:GpuForward.DecodeSteps*:CudaAttention.Batched*:CudaSample.*' \
    >"$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer exit code $?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/sanitizer.log" | head -5
  compute-sanitizer --tool memcheck --error-exitcode 9 $BUILD/cuda_model_test \
    --gtest_filter='CudaAttention.Prompt*:CudaAttention.Decode*' >"$OUT/sanitizer_attention.log" 2>&1
  echo "compute-sanitizer (attention) exit code $?"; grep -E "ERROR SUMMARY" "$OUT/sanitizer_attention.log" | head -2
fi

if has generate; then
  section "afq generate: --device cuda against --device cpu (greedy, 48 tokens)"
  run_both() {  # label, then afq generate arguments
    local label=$1; shift
    $afq generate "$@" --temp 0 --max-tokens 48 --ignore-eos --print-ids --device cpu >"$OUT/gen_cpu_$label.txt" 2>&1
    $afq generate "$@" --temp 0 --max-tokens 48 --ignore-eos --print-ids --device cuda >"$OUT/gen_cuda_$label.txt" 2>&1
    local rc=$?
    local a b
    a=$(grep "^ids:" "$OUT/gen_cpu_$label.txt"); b=$(grep "^ids:" "$OUT/gen_cuda_$label.txt")
    if [[ $rc -ne 0 ]]; then echo "$label: cuda FAILED (exit $rc): $(tail -2 "$OUT/gen_cuda_$label.txt")"
    elif [[ -n "$a" && "$a" == "$b" ]]; then echo "$label: same 48 ids"
    else
      echo "$label: ids DIFFER"; echo "  cpu  $a" | cut -c1-160; echo "  cuda $b" | cut -c1-160
    fi
    grep -E "tokens/s" "$OUT/gen_cuda_$label.txt" | sed 's/^/  cuda: /'
  }
  run_both tinyshakes --prompt "ROMEO:"
  run_both tinyshakes-q4 --prompt "ROMEO:" --bits 4 --group-size 64
  run_both tinyshakes-q8-minmax --prompt "JULIET:" --bits 8 --group-size 32 --method minmax
  run_both mlx-mixed --model tests/data/tinyshakes-5m-mlx-mixed_4_6 --prompt "JULIET:"
  run_both dequantized --model tests/data/tinyshakes-5m-mlx-mixed_4_6 --prompt "JULIET:" --dequantize
  echo "sampled text on the GPU (temp 0.8, top-p 0.95, seed 1):"
  $afq generate --device cuda --prompt "ROMEO:" --max-tokens 40 --temp 0.8 --top-p 0.95 --seed 1 2>&1 | head -6
  section "afq perplexity: cpu and cuda"
  for device in cpu cuda; do
    echo -n "$device: "; $afq perplexity --data models/tinyshakes-5m/valid.txt --max-tokens 8192 --device $device 2>&1 | tail -1
  done
fi

if has batch; then
  section "afq generate --batch-file --device cuda against each prompt alone (greedy, 48 tokens)"
  printf 'ROMEO:\nFirst Citizen:\nKING RICHARD:\nJULIET:\nTo be, or not to be\n' >"$OUT/prompts.txt"
  for extra in "" "--bits 4 --group-size 64"; do
    $afq generate --device cuda --batch-file "$OUT/prompts.txt" --temp 0 --max-tokens 48 --ignore-eos --print-ids \
      $extra >"$OUT/gen_batch.txt" 2>&1 || { echo "batch FAILED: $(tail -2 "$OUT/gen_batch.txt")"; continue; }
    mapfile -t batch_ids < <(grep "^ids:" "$OUT/gen_batch.txt")
    same=0
    i=0
    while IFS= read -r prompt; do
      alone=$($afq generate --device cuda --prompt "$prompt" --temp 0 --max-tokens 48 --ignore-eos --print-ids $extra \
        2>/dev/null | grep "^ids:")
      [[ "$alone" == "${batch_ids[$i]}" ]] && same=$((same + 1)) || echo "  differs: $prompt"
      i=$((i + 1))
    done <"$OUT/prompts.txt"
    echo "batch of $i ${extra:-(bf16)}: $same of $i equal to the prompt alone; $(tail -1 "$OUT/gen_batch.txt")"
  done
fi

if has bench-batch; then
  section "afq bench generate --device cuda --batch 1 and 16, beside transformers bf16"
  for shape in ${BATCH_SHAPES:-llama-3.2-1b llama-3-8b}; do
    for bits in 4 8; do
      for batch in 1 16; do
        echo -n "afq $shape $bits-bit batch $batch: "
        $afq bench generate --device cuda --shape $shape --bits $bits --group-size 64 --prompt-tokens 512 \
          --decode-tokens 64 --batch $batch --dir /tmp/afq-bench-$shape-$bits 2>&1 | tee -a "$OUT/bench_generate.txt" |
          grep -E "^decode|^prompt" | tr '\n' ' '
        echo
      done
      echo -n "afq $shape $bits-bit batch 1, sampled on the device: "
      $afq bench generate --device cuda --shape $shape --bits $bits --group-size 64 --prompt-tokens 512 \
        --decode-tokens 64 --sample --dir /tmp/afq-bench-$shape-$bits 2>&1 | grep -E "^decode"
      rm -rf /tmp/afq-bench-$shape-$bits
    done
    grep -E "device memory" "$OUT/bench_generate.txt" | tail -4
    python3 bench/transformers_generate.py --shape $shape --batches 1,16 2>&1 | grep -vE "Warning|warn\(" | tail -4
  done
fi

if has bench; then
  section "afq bench generate --device cuda (decode steps from the CUDA graph, and AFQ_CUDA_GRAPHS=0 beside it)"
  for args in "--shape llama-3.2-1b --bits 4" "--shape llama-3.2-1b --bits 8" "--shape llama-3.2-3b --bits 4"; do
    echo "--- $args"
    $afq bench generate --device cuda $args --group-size 64 --prompt-tokens 512 --decode-tokens 64 --dir /tmp/afq-bench-model \
      2>&1 | tee -a "$OUT/bench_generate.txt" | tail -4
    echo -n "  without graphs: "
    AFQ_CUDA_GRAPHS=0 $afq bench generate --device cuda $args --group-size 64 --prompt-tokens 512 --decode-tokens 64 \
      --dir /tmp/afq-bench-model 2>&1 | tee -a "$OUT/bench_generate.txt" | grep "^decode"
    rm -rf /tmp/afq-bench-model
  done
fi

if has bench8b; then
  section "afq bench generate --device cuda: llama-3-8b"
  $afq bench generate --device cuda --shape llama-3-8b --bits 4 --group-size 64 --prompt-tokens 512 \
    --decode-tokens 64 --dir /tmp/afq-bench-8b 2>&1 | tee -a "$OUT/bench_generate.txt" | tail -4
  echo -n "  without graphs: "
  AFQ_CUDA_GRAPHS=0 $afq bench generate --device cuda --shape llama-3-8b --bits 4 --group-size 64 --prompt-tokens 512 \
    --decode-tokens 64 --dir /tmp/afq-bench-8b 2>&1 | tee -a "$OUT/bench_generate.txt" | grep "^decode"
fi
