#!/usr/bin/env bash
# Builds the llama.cpp programs the benches compare against, outside this repository, and prints
# the folder to pass as --llama-cpp (or ATAX_LLAMA_CPP). Nothing of llama.cpp enters the repository.
#
#   bench/build_llamacpp.sh SRC [BUILD]
#
# SRC: a checkout of llama.cpp's public source (github.com/ggerganov/llama.cpp; the figures in the
# README used its tree of 2025-02). When SRC does not exist and git can reach GitHub, it is cloned
# there first (LLAMA_CPP_REF picks a tag or commit). BUILD: the build folder (default SRC/build).
# CPU only, tuned to this machine (GGML_NATIVE), Release, no curl; targets llama-perplexity,
# llama-bench, llama-batched-bench and llama-quantize (to make the Q8_0 / BF16 files).
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 SRC [BUILD]" >&2
  exit 2
fi
src=$(realpath -m "$1")
build=$(realpath -m "${2:-$src/build}")
repo=$(realpath "$(dirname "$0")/..")
case "$src/" in "$repo"/*) echo "$0: $src is inside the repository; build llama.cpp outside it" >&2; exit 2 ;; esac
case "$build/" in "$repo"/*) echo "$0: $build is inside the repository; build llama.cpp outside it" >&2; exit 2 ;; esac
if [[ ! -e "$src" ]]; then
  git clone --quiet https://github.com/ggerganov/llama.cpp "$src"
  if [[ -n "${LLAMA_CPP_REF:-}" ]]; then git -C "$src" checkout --quiet "$LLAMA_CPP_REF"; fi
fi
if [[ ! -f "$src/CMakeLists.txt" ]]; then
  echo "$0: $src has no CMakeLists.txt: not a llama.cpp checkout" >&2
  exit 1
fi
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON >&2
cmake --build "$build" -j"$(nproc)" --target llama-perplexity llama-bench llama-batched-bench llama-quantize >&2
for p in llama-perplexity llama-bench llama-batched-bench llama-quantize; do
  [[ -x "$build/bin/$p" ]] || { echo "$0: $build/bin/$p was not built" >&2; exit 1; }
done
echo "$build/bin"
