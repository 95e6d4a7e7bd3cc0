#!/usr/bin/env bash
# Makes the inputs of check_transformers_load.py with afq (built here, on the CPU): the shipped
# tinyshakes-5m quantized in transformers' layout with both methods and several settings, and
# afq's own dequantization of each. The result goes to .devcheck/ (git-ignored), carried to the
# GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
afq=${AFQ:-build/afq}
rm -rf .devcheck && mkdir -p .devcheck
for spec in "mlx 4 64" "minmax 2 32" "minmax 8 128"; do
  read -r method bits group <<<"$spec"
  name="${method}-b${bits}-g${group}"
  "$afq" quantize models/tinyshakes-5m ".devcheck/$name" --layout transformers \
    --method "$method" --bits "$bits" --group-size "$group"
  "$afq" dequantize ".devcheck/$name" ".devcheck/$name-deq"
done
