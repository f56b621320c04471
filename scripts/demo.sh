#!/usr/bin/env bash
# The main job: set up, build, pretrain Un-Mix over MoCo on Fashion-MNIST (the fmnist protocol
# with as many epochs as about 10 minutes of training buy on this machine, measured on a few
# steps first; the cosine schedule spans them), then put its kNN top-1 next to two baselines
# measured in the same run with the same readout (weighted kNN, k 200, t 0.1, bank = the 60k
# training images, queries = the 10k test images): the same network untrained, and the raw pixels.
#   scripts/demo.sh [--data DIR] [--minutes M] [--epochs N] [--out DIR]
# --minutes sets the training budget (default 10); --epochs N trains N epochs whatever it costs.
# DIR holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; by default the Debian package
# dataset-fashion-mnist is installed and used. A second run skips setup and build and starts a new
# run folder (the previous one is moved aside).
set -euo pipefail
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
epochs=
minutes=10
out=runs/demo
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: scripts/demo.sh [--data DIR] [--minutes M] [--epochs N] [--out DIR]" >&2; exit 2 ;;
  esac
done
now() { date +%s; }
echo "demo: machine: $(scripts/machine.sh)"

t0=$(now)
if [ ! -x .venv/bin/python ] || [ ! -x target/release/unmix ]; then
  echo "demo: first run: setup installs the torch wheel (libtorch for the build; 4.8 GB in .venv, as the wheel"
  echo "      carries CUDA's libraries), gloo's headers, sample photos and Fashion-MNIST (Debian package), then"
  echo "      cargo builds unmix. Measured on a fresh 2-core AMD EPYC (AVX2) with a fast mirror: setup 2 minutes, build 6."
fi
scripts/setup.sh
if [ "$data" = /usr/share/datasets/fashion-mnist ]; then scripts/fmnist.sh | sed 's/^/demo: /'; fi
t1=$(now)
cargo build --release --quiet
t2=$(now)
unmix=./target/release/unmix

# bf16 only where the CPU computes it natively (AVX-512 BF16 or AMX); emulated bf16 is slower
# than fp32.
precision=fp32
if scripts/machine.sh --native-bf16; then precision=bf16; fi
threads=$(nproc)
if [ -z "$epochs" ]; then
  # The machine's pace on the protocol's network (training steps on fixed batches), a little
  # slower in the run itself, where the data pipeline shares the cores: 0.9 of it.
  ips=$("$unmix" bench step --precision "$precision" --threads "$threads" --steps 12 --warmup 3 2>/dev/null |
    grep -oE '"images_per_second":[0-9.]+' | cut -d: -f2)
  epochs=$(awk -v ips="$ips" -v m="$minutes" 'BEGIN { e = int(m * 60 * ips * 0.9 / 60000); if (e < 1) e = 1; if (e > 100) e = 100; print e }')
  echo "demo: this machine trains the protocol's network at $(printf '%.0f' "$ips") images/s ($precision, $threads threads; 12 timed steps):"
  echo "      $minutes minutes of training buy $epochs epochs of the 60,000 images; the cosine schedule spans them"
fi
force=()
[ -e "$out" ] && force=(--force)
echo "demo: pretraining Un-Mix + MoCo for $epochs epochs of the fmnist protocol in $precision; the run folder is $out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$unmix" pretrain --config configs/fmnist-moco-unmix.toml --data "$data" "${force[@]}" \
  --set train.epochs="$epochs" --set eval.knn_every=0 --set train.precision="$precision" --set threads="$threads" \
  --out "$out" | tee "$log"
t3=$(now)
echo
echo "demo: the baselines, same readout: the same network untrained (seed 0), then raw pixels"
"$unmix" knn --random-init --config "$out/config.toml" --data "$data" | tee -a "$log"
"$unmix" knn --raw-pixels --config "$out/config.toml" --data "$data" | tee -a "$log"
t4=$(now)

pct() { grep -oE 'kNN top-1: [0-9.]+' "$log" | sed -n "$1p" | grep -oE '[0-9.]+$'; }
trained=$(pct 1)
untrained=$(pct 2)
pixels=$(pct 3)
above() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; printf "%+.2f", d; exit !(d > 0) }'; }
cat <<MSG

== Result (kNN top-1 on the 10k Fashion-MNIST test images; weighted kNN, k 200, t 0.1, cosine) ==
  Un-Mix + MoCo, $epochs epochs ($precision):  $trained %
  the same network untrained:      $untrained %
  raw pixels (no network):         $pixels %
MSG
if d=$(above "$trained" "$untrained"); then
  echo "Pretraining moved the encoder $d points above its untrained self: it learned features without labels."
else
  echo "The trained encoder is NOT above its untrained self ($d points): something is wrong; please report it."
fi
if d=$(above "$trained" "$pixels"); then
  echo "It is also $d points above kNN on raw pixels."
else
  echo "It is still ${d#-} points below kNN on raw pixels: on Fashion-MNIST (centred grey items on a black"
  echo "background) pixels are a strong kNN baseline, and $epochs epochs are far from converged (give it more"
  echo "with --minutes M). The full 10-epoch protocol (about 45 minutes on 2 AVX2 cores) passes them:"
  for arm in unmix base; do
    rec=results/fmnist-seeds/moco/$arm-seed0
    [ -f "$rec/summary.json" ] || continue
    .venv/bin/python - "$rec" "$arm" <<'PY'
import json, sys
rec, arm = sys.argv[1], sys.argv[2]
s = json.load(open(rec + "/summary.json"))
cpu = s.get("machine") or "see results/fmnist-seeds/machine.txt"
name = "Un-Mix + MoCo" if arm == "unmix" else "MoCo alone"
print(f"  {name}, 10 epochs, seed 0: kNN {s['knn']['top1']:.2f} % (run record {rec}; CPU: {cpu})")
PY
  done
  echo "  $unmix pretrain --config configs/fmnist-moco-unmix.toml --data $data --out runs/fmnist-unmix"
fi
echo "demo wall time: setup $((t1 - t0)) s, build $((t2 - t1)) s, training $((t3 - t2)) s, baselines $((t4 - t3)) s"
