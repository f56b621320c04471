#!/usr/bin/env bash
# Runs every test: sets up libtorch if needed, then the whole workspace's tests in release mode
# (the model tests train real networks, which is slow unoptimized).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --release --workspace "$@"
