#!/usr/bin/env bash
# One device call after a change to the CPU or CUDA ops' plumbing: the CUDA tests, the torch
# extension rebuilt, its operator benchmark (bench/torch_qmm_ops.py: afq against F.linear at the
# 1B model's linear shapes), its quick tests, and the transformers decode speed on CUDA and the CPU.
# Carry .devdeps.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/afq-out}
export OUT
STAGES="build" scripts/device/cuda_model_run.sh 2>&1 | tail -2
STAGES="test qmm" scripts/device/cuda_model_run.sh 2>&1 | grep -E "PASSED|FAILED|exit code" | head
STAGES="build" scripts/device/torch_run.sh 2>&1 | grep -E "OpenMP|built|error|WARN" | head
export PYTHONPATH=$PWD/build-torch/python HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
ldd build-torch/python/afq_torch/_afq_torch_ops.so | grep -iE "gomp|omp"
python3 bench/torch_qmm_ops.py --devices cpu,cuda --m 1,8 --threads 16 2>&1 | tail -24
python3 torch-ext/tests/test_ops.py --quick --no-compile 2>&1 | grep -E "FAIL|passed" | tail -3
for device in cuda cpu; do
  python3 bench/torch_transformers.py --results build-torch/results --parts speed --devices $device --models llama1b,tinyshakes \
    2>&1 | grep -E "^\[speed|Error"
done
python3 bench/torch_transformers.py --summary --results build-torch/results 2>&1 | tail -9
