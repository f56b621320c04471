#!/usr/bin/env bash
# The prepared GPU check (issue 20): one command of at most 10 minutes on a lent machine with one
# GPU and torch 2.11 (CUDA 13) in its python3. It runs the unmix binary built here against torch
# 2.11 (scripts/setup.sh --torch 2.11, then cargo build --release in target/torch-2.11) on the
# machine's own libtorch, on data that travels in the tree (the Fashion-MNIST fixture), and writes
# every figure into one JSON file:
#   1. unmix selftest --device cuda: the same steps on CPU and CUDA, CUDA autocast bf16, the
#      split-BN node, pinned staging, a one-process NCCL group doing each collective;
#   2. a short fmnist MoCo + Un-Mix run on CUDA, fp32 and bf16 (kNN, images/s);
#   3. the ResNet-18 CIFAR-shape training step at batch 512: unmix, PyTorch eager and
#      torch.compile, on the same GPU.
#
#   scripts/gpu-check.sh [--dry-run] [--out FILE] [--bin PATH]
#
# --dry-run checks everything but the GPU parts on the CPU (what CI runs): the same commands on
# device "cpu" at tiny sizes, torch.compile left out. Default output: gpu-check.json ($OUT/ when
# the device tool's OUT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
out="${OUT:+$OUT/}gpu-check.json"
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --dry-run, --out FILE, --bin PATH)" >&2; exit 2 ;;
  esac
done
if [ "$dry" = 1 ]; then
  device=cpu; batch=16; steps=2; limit=256; py=.venv/bin/python
  bin="${bin:-target/release/unmix}"
  [ -x "$bin" ] || { scripts/setup.sh; cargo build --release; }
else
  device=cuda; batch=512; steps=30; limit=0; py=python3
  bin="${bin:-target/torch-2.11/target/release/unmix}"
  # The machine's own libtorch, before the build machine's (the binary's runpath).
  torch_lib=$("$py" -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
[ -x "$bin" ] || { echo "gpu-check: no unmix binary at $bin (--bin PATH)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixture=crates/unmix-data/tests/fixtures/fashion-mnist
status=0
step() {  # step NAME COMMAND...: the command's last stdout line (JSON) goes into $work/NAME.json
  local name="$1"; shift
  echo "== gpu-check: $name" >&2
  local t0=$SECONDS
  if "$@" > "$work/$name.out" 2> "$work/$name.err"; then
    tail -n 1 "$work/$name.out" > "$work/$name.json"
  else
    status=1
    printf '{"failed": true, "stderr": %s}\n' "$("$py" -c 'import json,sys; print(json.dumps(sys.stdin.read()[-4000:]))' < "$work/$name.err")" > "$work/$name.json"
  fi
  echo "   $((SECONDS - t0)) s" >&2
}

selftest() { "$bin" selftest --device "$device" | "$py" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))'; }
step selftest selftest

fmnist() {  # fmnist PRECISION: a short run of the protocol on the fixture, summary.json as one line
  local run="$work/fmnist-$1"
  "$bin" pretrain --config configs/fmnist-moco-unmix.toml --quiet --out "$run" --data "$fixture" \
    --set device="\"$device\"" --set train.precision="\"$1\"" --set train.epochs=2 --set data.limit="$limit" \
    --set eval.knn_k=20 --set data.workers=2 >&2
  "$py" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$run/summary.json"
}
step fmnist_fp32 fmnist fp32
step fmnist_bf16 fmnist bf16

step step_unmix "$bin" bench step --model cifar-resnet18 --batch "$batch" --steps "$steps" --set device="\"$device\""
step step_pytorch_eager "$py" bench/fmnist_pytorch.py step --model cifar-resnet18 --batch "$batch" --steps "$steps" --device "$device"
if [ "$dry" = 0 ]; then
  step step_pytorch_compile "$py" bench/fmnist_pytorch.py step --model cifar-resnet18 --batch "$batch" --steps "$steps" --device "$device" --compile
fi

"$py" - "$work" "$out" "$dry" <<'PY'
import json, os, platform, subprocess, sys
work, out, dry = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
result = {"dry_run": dry, "host": platform.node(), "cpu": platform.processor()}
try:
    result["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=20).stdout.strip()
except Exception as e:
    result["gpu"] = f"none ({e.__class__.__name__})"
for f in sorted(os.listdir(work)):
    if f.endswith(".json"):
        with open(os.path.join(work, f)) as fh:
            text = fh.read().strip()
        try:
            result[f[:-5]] = json.loads(text)
        except json.JSONDecodeError:
            result[f[:-5]] = {"failed": True, "output": text[-2000:]}
u, e = result.get("step_unmix", {}), result.get("step_pytorch_eager", {})
if "images_per_second" in u and "images_per_second" in e:
    result["ratio_unmix_vs_pytorch_eager"] = u["images_per_second"] / e["images_per_second"]
c = result.get("step_pytorch_compile", {})
if "images_per_second" in u and "images_per_second" in c:
    result["ratio_unmix_vs_torch_compile"] = u["images_per_second"] / c["images_per_second"]
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with open(out, "w") as fh:
    json.dump(result, fh, indent=2)
print(json.dumps(result, indent=2))
PY
echo "gpu-check: wrote $out" >&2
exit $status
