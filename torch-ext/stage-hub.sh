#!/usr/bin/env bash
# Copies the afq sources that build.toml lists into torch-ext/afq/ (git-ignored): kernel-builder reads
# only files inside the kernel's directory, and afq's live in the repository's include/ and src/.
#   torch-ext/stage-hub.sh && cd torch-ext && kernel-builder build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rm -rf "$here/afq"
mkdir -p "$here/afq/src"
cp -r "$root/include" "$here/afq/include"
for area in core quant cpu cuda; do
  cp -r "$root/src/$area" "$here/afq/src/$area"
  rm -f "$here/afq/src/$area/CMakeLists.txt"
done
echo "afq sources staged in $here/afq"
