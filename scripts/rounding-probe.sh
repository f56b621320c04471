#!/usr/bin/env bash
# Where a machine class's rounding comes from: the first steps of a run (default: the 50-epoch MoCo
# pair's base arm, results/fmnist-seeds/moco-50ep/base-seed0/config.toml) with the losses of every
# step, once as the machine picks its kernels and once with each library held to another path
# (MKL_CBWR=COMPATIBLE, ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2 and =default). Two machines
# whose default lines agree repeat each other's runs; a setting that changes the line here is one
# through which machines can differ. Prints the machine line, then one line per setting; the run
# folders go to DIR (default target/rounding-probe).
#
#   scripts/rounding-probe.sh [--config FILE] [--steps N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=results/fmnist-seeds/moco-50ep/base-seed0/config.toml
steps=3
out=target/rounding-probe
while [ $# -gt 0 ]; do
  case "$1" in
    --config) cfg="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --config FILE, --steps N, --out DIR)" >&2; exit 2 ;;
  esac
done
. scripts/runs-begin.sh
runs_begin "$out"
echo "machine: $(scripts/machine.sh)"
echo "config: $cfg, losses of steps 1..$steps"
for setting in "" MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ATEN_CPU_CAPABILITY=default; do
  dir="$out/${setting:-default}"
  rm -rf "$dir"
  env $setting "$bin" pretrain --config "$cfg" --set train.epochs=1 --set "train.steps=$steps" --set train.log_every=1 \
    --set eval.knn_every=0 --set eval.online_probe=false --quiet --out "$dir" > "$dir.log" 2>&1 ||
    { echo "${setting:-default}: the run failed, see $dir.log" >&2; exit 1; }
  python3 - "${setting:-default}" "$dir/steps.jsonl" <<'PY'
import json, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[2])]
print(f"{sys.argv[1]:<28}", " ".join(repr(x) for x in losses))
PY
done
