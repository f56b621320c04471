#!/usr/bin/env bash
# Is Un-Mix worth its compute? (issue 31) `unmix compare` on the fmnist protocol (fp32) with arms
# matched in counted compute (backbone passes per image x steps x batch):
#   moco-at-base   MoCo at the base method's 10-epoch compute: base, i-Mix, + Un-Mix matched down
#   moco-at-unmix  MoCo at + Un-Mix's 10-epoch compute: + Un-Mix, the base method and i-Mix matched
#                  up, MixCo matched; differences against the base method matched up (base@unmix)
#   simclr         SimCLR: base, + Un-Mix, and the base method at + Un-Mix's compute
#   moco-50ep      MoCo at 50 epochs, seed 0: base, + Un-Mix, base at + Un-Mix's compute, kNN
#                  every 10 epochs (compare.png: kNN against counted compute)
# Every arm keeps the protocol's settings and changes only the mixing (i-Mix and MixCo with their
# authors' CIFAR draws: lambda ~ Beta(1, 1), folded for i-Mix; MixCo's mix_T 0.05).
#
#   scripts/equal-compute.sh [--out DIR] [--only "moco simclr moco-50ep"] [--seeds N]
#
# Long (about 10 hours for MoCo's three seeds on 2 cores): run it in the background with a copy of
# the binary (UNMIX_BIN=/path/to/unmix) and start it again after any interruption: finished runs
# are read back, an interrupted one resumes from its last checkpoint. One seed's arms run back to
# back (`compare --seeds n` reads seeds 0..n-2 back and trains seed n-1), so the comparisons fill
# seed by seed. Results (the run records and tables, not the weights) go to DIR (default
# results/equal-compute), kept in the repository; each comparison's compare.md is its table.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/equal-compute
only="moco simclr moco-50ep"
seeds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --out DIR, --only \"moco simclr moco-50ep\", --seeds N)" >&2; exit 2 ;;
  esac
done
. scripts/runs-begin.sh
runs_begin "$out"

# One comparison's seed count n: NAME CONFIG ARMS REFERENCE [compare args...].
compare() {
  local n="$1" name="$2" cfg="$3" arms="$4" ref="$5"
  shift 5
  echo "== $name seeds 0..$((n - 1)) ($cfg, arms $arms) -> $out/$name  $(date -u +%H:%MZ)"
  "$bin" compare --config "$cfg" --seeds "$n" --arms "$arms" --reference "$ref" "$@" --quiet --out "$out/$name"
}

for job in $only; do
  case "$job" in
    moco)
      for n in $(seq 1 "$seeds"); do
        compare "$n" moco-at-base configs/fmnist-moco-unmix.toml base,imix,unmix@base base
        compare "$n" moco-at-unmix configs/fmnist-moco-unmix.toml base@unmix,unmix,imix@unmix,mixco@unmix base@unmix
      done ;;
    simclr)
      for n in $(seq 1 "$seeds"); do
        compare "$n" simclr configs/fmnist-simclr-unmix.toml base@unmix,unmix,base base@unmix
      done ;;
    moco-50ep)
      compare 1 moco-50ep configs/fmnist-moco-unmix.toml base@unmix,unmix,base base@unmix \
        --set train.epochs=50 --set eval.knn_every=10 ;;
    *) echo "unknown job $job (use moco, simclr, moco-50ep)" >&2; exit 2 ;;
  esac
done
