#!/usr/bin/env bash
# Runs every test: sets up libtorch if needed, prints the CPU it runs on (results of float
# kernels depend on it), then the whole workspace's tests in release mode (the model tests train
# real networks, which is slow unoptimized), every suite even when one fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_bf16|amx_tile|fma)$' | tr '\n' ' ')"
cargo test --release --workspace --no-fail-fast "$@"
