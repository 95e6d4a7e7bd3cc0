# A/B of programmatic dependent launch on the GPU machine: the kernels' and the model's tests
# (and compute-sanitizer), then the int8 GEMV (M=1) and afq bench generate (1B, 8B at 4 bits,
# 1B at 8 bits) with AFQ_CUDA_PDL=1 and =0 in the same run. Carry .devdeps.
#   bash scripts/device/pdl_ab.sh
set -uo pipefail
STAGES="build test sanitize" scripts/device/cuda_run.sh 2>&1 | grep -v ptxas | grep -E "PASSED|FAILED|Failure|actual|exit code|ERROR SUMMARY"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu
for pdl in 1 0; do
  echo "AFQ_CUDA_PDL=$pdl, int8, M=1"
  AFQ_CUDA_PDL=$pdl AFQ_CUDA_QMM=int8 build-device/afq bench qmm --device cuda --m 1 --n 4096,14336,8192,28672 \
    --k 14336,4096,8192,8192 --bits 4 --group-size 64 | tail -n +5
done
STAGES="build test sanitize" scripts/device/cuda_model_run.sh 2>&1 | grep -v ptxas | grep -E "PASSED|FAILED|Failure|exit code|ERROR SUMMARY"
for args in "llama-3.2-1b --bits 4" "llama-3.2-1b --bits 8" "llama-3.2-3b --bits 4" "llama-3-8b --bits 4"; do
  for pdl in 1 0; do
    echo -n "$args AFQ_CUDA_PDL=$pdl: "
    AFQ_CUDA_PDL=$pdl build-device/afq bench generate --device cuda --shape $args --group-size 64 --prompt-tokens 512 \
      --decode-tokens 64 --dir "/tmp/m-${args// /}" 2>&1 | grep -E "^decode" | tr '\n' ' '; echo
  done
done
