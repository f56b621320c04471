#!/usr/bin/env bash
# The performance benchmark of issue 6: unmix against PyTorch (bench/fmnist_pytorch.py, the
# fmnist protocol written the way the authors' code is) on the same cores, one workload after the
# other so they never compete:
#   (a) the fmnist training loop with its data pipeline (PyTorch: DataLoader with 2 workers),
#       MoCo + Un-Mix, then MoCo alone (what the mixtures cost in each library),
#   (b) the training step alone: the fmnist net at batch 256 and ResNet-18 CIFAR at batch 128,
#       fp32 and bf16 (PyTorch: torch.autocast on CPU),
#   (c) kNN evaluation over the 60k bank and 10k test images.
# Each step row also shows its achieved GFLOP/s (the step's counted FLOPs: its backbone passes
# x one forward pass's convolution FLOPs, src/model/tally.rs) as a share of the machine's peak,
# measured first in the same run (`unmix bench peak`: 2048^2 matrix products, a 3x3 convolution).
#
#   scripts/bench.sh [--data DIR] [--steps N] [--tiny] [--avx2] [--bf16] [--set KEY=VALUE ...]
#
# bf16 rows run only where the CPU computes bf16 natively (AVX-512 BF16 or AMX, and oneDNN not
# limited to AVX2): elsewhere both libraries emulate it, many times slower than fp32 (PyTorch's
# bf16 fmnist step had not finished 60 steps after 9 minutes on a 2-core AVX2 EPYC, against 77 s
# for fp32), and unmix warns against that setting. --bf16 runs them anyway.
# --avx2 runs both sides with oneDNN and ATen limited to AVX2 kernels (ONEDNN_MAX_CPU_ISA=AVX2,
# ATEN_CPU_CAPABILITY=avx2): the stand-in, on an AVX-512 machine, for an AVX2-only CPU. Setting
# those variables yourself does the same. The CPU model, its flags and the two variables are
# printed first: figures hold for a machine class, not for every CPU.
# --tiny runs every workload for a few steps on the repository's Fashion-MNIST fixture (what CI
# checks: that the benchmark runs). --set passes a config override to unmix's loop and step runs
# (e.g. --set model.memory_format='"channels-last"'; PyTorch's side is unchanged). Prints a table
# with the ratios; writes runs/bench.json (first line: CPU, flags, commit, date; then one line per
# measurement). Keep the record of figures you publish in results/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
loop_steps=120
step_steps=20
tiny=0
bf16=auto
set=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --steps) loop_steps="$2"; shift 2 ;;
    --tiny) tiny=1; data=crates/unmix-data/tests/fixtures/fashion-mnist; loop_steps=3; step_steps=2; shift ;;
    --set) set+=(--set "$2"); shift 2 ;;
    --bf16) bf16=1; shift ;;
    --avx2) export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2; shift ;;
    *) echo "unknown argument $1 (use --data DIR, --steps N, --tiny, --avx2, --bf16, --set KEY=VALUE)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || scripts/setup.sh
[ -x target/release/unmix ] || cargo build --release
u=target/release/unmix
py=(.venv/bin/python bench/fmnist_pytorch.py)
out=runs/bench.json
mkdir -p runs
: > "$out"
row() {  # name, unmix json, pytorch json[, reference json for the bf16-vs-fp32 ratio]
  echo "$2" >> "$out"; echo "$3" >> "$out"
  python3 - "$1" "$2" "$3" "${4:-}" "${peak:-}" <<'PY'
import json, sys
name, u, p = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ref = json.loads(sys.argv[4]) if sys.argv[4] else None
r = u["images_per_second"] / p["images_per_second"]
extra = f"   vs PyTorch fp32 {u['images_per_second'] / ref['images_per_second']:.2f}x" if ref else ""
# A step row: its achieved GFLOP/s (counted FLOPs x images/s) against the machine's peak measured
# in this run (fp32: the better of the GEMM and the convolution; bf16: the bf16 GEMM).
if "gflops" in u and sys.argv[5]:
    peak = json.loads(sys.argv[5])
    top = peak["gemm_bf16_gflops"] if u["precision"] == "bf16" else max(peak["gemm_fp32_gflops"], peak["conv3x3_fp32_gflops"])
    if top:
        extra += f"   {u['gflops']:.0f} GFLOP/s = {100 * u['gflops'] / top:.0f} % of the {u['precision']} peak"
print(f"{name:<34} {u['images_per_second']:10.1f} {p['images_per_second']:10.1f} {r:7.2f}x   RSS {u['peak_rss_gib']:.2f} / {p['peak_rss_gib']:.2f} GiB{extra}")
PY
}
echo "machine: $(scripts/machine.sh)"
# The first line of the record names the machine, the code and the kernel limits, so a copy of it
# kept beside the figures (results/bench/) still says where they came from.
python3 -c 'import json, sys; print(json.dumps({"what": "machine", **json.loads(sys.argv[1]), **dict(zip(["commit", "date", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "tiny"], sys.argv[2:]))}))' \
  "$(scripts/machine.sh --json)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')" \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "${ONEDNN_MAX_CPU_ISA:-unset}" "${ATEN_CPU_CAPABILITY:-unset}" "$tiny" >> "$out"
echo "kernels: ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-unset} ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-unset} (unset: the best this CPU has)"
if [ "$bf16" = auto ]; then
  if scripts/machine.sh --native-bf16; then bf16=1; else bf16=0; fi
fi
[ "$bf16" = 1 ] || echo "bf16 rows skipped$([ "$tiny" = 1 ] && echo " but the fmnist one"): no native bf16 here (AVX-512 BF16 / AMX), both sides would emulate it; --bf16 runs them"
# The machine's attainable peak through libtorch, measured in this run: the anchor of the step rows.
peak=$($u bench peak --threads 2 --seconds "$([ "$tiny" = 1 ] && echo 0.2 || echo 3)")
echo "$peak" >> "$out"
python3 - "$peak" <<'PY'
import json, sys
p = json.loads(sys.argv[1])
b = p["gemm_bf16_gflops"]
bf16 = f"{b:.0f}" if b else "not native here"
print(f"peak (2 threads): fp32 GEMM {p['gemm_fp32_gflops']:.0f} GFLOP/s, fp32 3x3 conv {p['conv3x3_fp32_gflops']:.0f}, bf16 GEMM {bf16}")
PY
printf "%-34s %10s %10s %8s\n" workload "unmix/s" "pytorch/s" ratio
[ "$tiny" = 1 ] && small=(--batch 32) || small=()
row "(a) fmnist loop, data included" "$($u bench loop --steps "$loop_steps" --data "$data" --workers 1 ${set[@]+"${set[@]}"} | tail -1)" "$("${py[@]}" loop --steps "$loop_steps" --data "$data" --workers 2)"
# The same loop without the mixtures (MoCo alone): what Un-Mix costs in each library.
row "(a) fmnist loop, MoCo alone" "$($u bench loop --steps "$loop_steps" --data "$data" --workers 1 --set unmix.enabled=false ${set[@]+"${set[@]}"} | tail -1)" "$("${py[@]}" loop --steps "$loop_steps" --data "$data" --workers 2 --no-unmix)"
for model in fmnist cifar-resnet18; do
  # Each step measurement runs ~15-30 s: the fmnist step is ~6x faster, so it runs 3x the steps
  # (20 of them, ~5 s, moved the bf16 ratio by 0.1 between runs).
  if [ "$model" = fmnist ]; then b=256; n=$((step_steps * 3)); else b=128; n=$step_steps; fi
  [ "$tiny" = 1 ] && { b=16; n=$step_steps; }
  pf=$("${py[@]}" step --model $model --batch $b --steps $n)
  row "(b) step $model b$b fp32" "$($u bench step --model $model --batch $b --steps $n ${set[@]+"${set[@]}"})" "$pf"
  # --tiny (CI) checks that a bf16 row runs even without native bf16: the fmnist one, where
  # emulation takes seconds (ResNet-18's takes minutes on a 2-core AVX2 CPU).
  if [ "$bf16" = 1 ] || { [ "$tiny" = 1 ] && [ "$model" = fmnist ]; }; then
    pb=$("${py[@]}" step --model $model --batch $b --steps $n --precision bf16)
    row "(b) step $model b$b bf16 (autocast)" "$($u bench step --model $model --batch $b --steps $n --precision bf16 ${set[@]+"${set[@]}"})" "$pb" "$pf"
  fi
done
row "(c) kNN, 60k bank + 10k test" "$($u bench knn --data "$data")" "$("${py[@]}" knn --data "$data" --workers 2)"
echo "(images/second; RSS = peak resident memory, unmix / PyTorch incl. its loader workers; details in $out)"
