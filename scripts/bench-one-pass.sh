#!/usr/bin/env bash
# unmix.one_pass against two passes (issue 35, item 2): MoCo + Un-Mix with view 1 and its mixture
# forwarded through the query encoder as one batch (batch norm per batch), against a pass each.
# The training step alone (fmnist net at batch 256, ResNet-18 CIFAR at batch 128; fp32, and bf16
# where the CPU computes it natively) and the fmnist training loop with its data pipeline, each
# measured A B A B ... for --rounds rounds in one run; prints per workload the median images/s of
# each arm and the median of the per-round ratios (one pass / two passes). Record: OUT (JSON lines,
# the machine first). Run it on an otherwise idle machine.
#
#   scripts/bench-one-pass.sh [--rounds 3] [--out runs/one-pass.jsonl] [--tiny]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
out=runs/one-pass.jsonl
tiny=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --tiny) tiny=1; shift ;;
    *) echo "unknown argument $1 (use --rounds N, --out FILE, --tiny)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || scripts/setup.sh
[ -x target/release/unmix ] || cargo build --release
u=target/release/unmix
echo "machine: $(scripts/machine.sh)"
mkdir -p "$(dirname "$out")"
python3 -c 'import json, sys; print(json.dumps({"what": "machine", **json.loads(sys.argv[1]), "commit": sys.argv[2]}))' \
  "$(scripts/machine.sh --json)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')" > "$out"
if [ "$tiny" = 1 ]; then
  data=(--data crates/unmix-data/tests/fixtures/fashion-mnist); s_f=2; s_r=1; s_l=3
else
  data=(); s_f=30; s_r=8; s_l=120
fi
workloads=("step fmnist fp32|bench step --model fmnist --batch 256 --steps $s_f"
           "step cifar-resnet18 fp32|bench step --model cifar-resnet18 --batch 128 --steps $s_r")
if scripts/machine.sh --native-bf16; then
  workloads+=("step fmnist bf16|bench step --model fmnist --batch 256 --precision bf16 --steps $s_f"
              "step cifar-resnet18 bf16|bench step --model cifar-resnet18 --batch 128 --precision bf16 --steps $s_r")
fi
workloads+=("fmnist loop, data included|bench loop --steps $s_l ${data[*]}")
for r in $(seq 1 "$rounds"); do
  for w in "${workloads[@]}"; do
    name=${w%%|*}
    read -ra args <<< "${w#*|}"
    for arm in two one; do
      set=(); [ "$arm" = one ] && set=(--set unmix.one_pass=true)
      line=$("$u" "${args[@]}" "${set[@]}" | tail -1)
      python3 -c 'import json, sys; print(json.dumps({"workload": sys.argv[1], "arm": sys.argv[2], "round": int(sys.argv[3]), **json.loads(sys.argv[4])}))' \
        "$name" "$arm" "$r" "$line" >> "$out"
      echo "round $r  $name  $arm pass(es): $(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["images_per_second"], 1))' "$line") img/s"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print(f"{'workload':<30} {'two passes':>10} {'one pass':>9} {'one/two':>8}  (median images/s; ratio: median of the rounds' ratios)")
for w in dict.fromkeys(r["workload"] for r in rows):
    by = {(r["arm"], r["round"]): r["images_per_second"] for r in rows if r["workload"] == w}
    rounds = sorted({k[1] for k in by})
    two = statistics.median(by[("two", k)] for k in rounds)
    one = statistics.median(by[("one", k)] for k in rounds)
    ratio = statistics.median(by[("one", k)] / by[("two", k)] for k in rounds)
    print(f"{w:<30} {two:10.1f} {one:9.1f} {ratio:7.3f}x")
PY
