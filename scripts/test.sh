#!/usr/bin/env bash
# Runs every test: sets up libtorch if needed, prints the CPU it runs on (results of float
# kernels depend on it), then the whole workspace's tests in release mode (the model tests train
# real networks, which is slow unoptimized), every suite even when one fails.
#
#   scripts/test.sh [CARGO TEST ARGS]         against torch 2.13 (tch 0.26), the main build
#   scripts/test.sh --torch 2.11 [ARGS]       the same tests built against torch 2.11 (tch 0.24)
set -euo pipefail
cd "$(dirname "$0")/.."
torch=2.13
if [ "${1:-}" = --torch ]; then
  torch="$2"
  shift 2
fi
scripts/setup.sh --torch "$torch"
echo "machine: $(scripts/machine.sh)"
if [ "$torch" != 2.13 ]; then
  cd "target/torch-$torch"
fi
cargo test --release --workspace --no-fail-fast "$@"
