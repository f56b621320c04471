#!/usr/bin/env bash
# Why SwAV + Un-Mix trails SwAV on the fmnist protocol (issue 32, item 7): the two candidate causes,
# seed 0, fp32, each a base / + Un-Mix pair with `unmix compare`:
#   swav-bn1    the pair with one batch-norm group (model.bn_splits = 1), as the authors' SwAV code
#               normalizes its whole batch (one group of 384 on each of their GPUs), against the
#               config's 8 groups of the seed table (results/fmnist-seeds/swav);
#   swav-bn8    the control: the config's 8 groups, seed 0, on the same machine class as swav-bn1 (the
#               seed table's seed 0 ran on another class);
#   swav-50ep   the pair trained for 50 epochs with kNN every 10, against the 10-epoch pair: does the
#               gap close with training (as the paper's SwAV tables need hundreds of epochs)?
# Long (about 1 h each for swav-bn1 and swav-bn8, 5 h for swav-50ep, on 2 cores): in the background with a copy of the
# binary (UNMIX_BIN=/path/to/unmix); start it again after an interruption (finished runs are read
# back, an interrupted one resumes from its checkpoint). Records (not the weights) go to DIR (default
# results/swav-diagnosis), each comparison's compare.md its table.
#
#   scripts/swav-diagnosis.sh [--out DIR] [--only "swav-bn1 swav-bn8 swav-50ep"]
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/swav-diagnosis
only="swav-bn1 swav-bn8 swav-50ep"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --out DIR, --only \"swav-bn1 swav-bn8 swav-50ep\")" >&2; exit 2 ;;
  esac
done
. scripts/runs-begin.sh
runs_begin "$out"
for job in $only; do
  case "$job" in
    swav-bn1) set=(--set model.bn_splits=1) ;;
    swav-bn8) set=() ;;
    swav-50ep) set=(--set train.epochs=50 --set eval.knn_every=10) ;;
    *) echo "unknown job $job (use swav-bn1, swav-bn8, swav-50ep)" >&2; exit 2 ;;
  esac
  echo "== $job -> $out/$job  $(date -u +%H:%MZ)"
  "$bin" compare --config configs/fmnist-swav-unmix.toml --seeds 1 --arms base,unmix --reference base \
    "${set[@]}" --quiet --out "$out/$job"
done
