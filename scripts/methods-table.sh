#!/usr/bin/env bash
# The methods table of issue 5: every base method with and without Un-Mix on a short fmnist
# budget (3 epochs on the first 20,000 training images, kNN against the full 10,000-image test
# set), next to the kNN top-1 of the same network at random initialization.
#
#   scripts/methods-table.sh [--out DIR] [--data DIR] [--set KEY=VALUE ...]
#
# Writes DIR/table.md (default runs/methods-table) and prints it. Each method keeps its own
# optimizer settings from configs/fmnist-<method>-unmix.toml; warmup is scaled to the budget.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/methods-table
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --data) extra+=(--set "data.root=\"$2\""); shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    *) echo "unknown argument $1 (use --out DIR, --data DIR, --set KEY=VALUE)" >&2; exit 2 ;;
  esac
done
methods="${METHODS:-moco simclr byol swav simsiam barlow vicreg wmse}"
bin="${UNMIX_BIN:-target/release/unmix}"
[ -x "$bin" ] || cargo build --release
mkdir -p "$out"
budget=(--set data.limit=20000 --set train.epochs=3 --set eval.knn_every=0)
table="$out/table.md"
{
  echo "| method | random init kNN | base kNN | + Un-Mix kNN | gain | base img/s | + Un-Mix img/s |"
  echo "|---|---|---|---|---|---|---|"
} > "$table"
num() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('%.2f' % s$2)" "$1"; }
for m in $methods; do
  cfg=configs/fmnist-$m-unmix.toml
  warm=()
  # A warmup of 1 epoch of the 10-epoch protocol becomes 0.3 of the 3-epoch budget.
  if grep -q '^warmup_epochs' "$cfg"; then warm=(--set train.warmup_epochs=0.3); fi
  # SwAV's prototypes stay frozen for the first epoch of the protocol: a tenth of the run, here too.
  if grep -q '^freeze_prototypes_steps' "$cfg"; then warm+=(--set method.freeze_prototypes_steps=23); fi
  rand=$("$bin" knn --random-init --config "$cfg" "${extra[@]}" | sed -n 's/^kNN top-1: \([0-9.]*\)%.*/\1/p')
  for u in false true; do
    "$bin" pretrain --config "$cfg" --out "$out/$m-unmix-$u" --quiet "${budget[@]}" "${warm[@]}" "${extra[@]}" --set unmix.enabled=$u > "$out/$m-unmix-$u.log" 2>&1 \
      || { echo "$m unmix=$u failed, see $out/$m-unmix-$u.log" >&2; exit 1; }
  done
  b="$out/$m-unmix-false/summary.json"; w="$out/$m-unmix-true/summary.json"
  bk=$(num "$b" "['knn']['top1']"); wk=$(num "$w" "['knn']['top1']")
  gain=$(python3 -c "print('%+.2f' % ($wk - $bk))")
  echo "| $m | $rand | $bk | $wk | $gain | $(num "$b" "['images_per_second']") | $(num "$w" "['images_per_second']") |" >> "$table"
  echo "done: $m (random $rand, base $bk, unmix $wk)"
done
cat "$table"
