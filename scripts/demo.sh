#!/usr/bin/env bash
# The main job: set up, build, then pretrain Un-Mix over MoCo on Fashion-MNIST (the fmnist protocol
# with fewer epochs, about 10 minutes on 2 cores) and print the kNN top-1 on the test set.
#   scripts/demo.sh [--data DIR] [--epochs N] [--out DIR]
# DIR holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; by default the Debian package
# dataset-fashion-mnist is installed and used.
set -euo pipefail
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
epochs=2
out=runs/demo
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: scripts/demo.sh [--data DIR] [--epochs N] [--out DIR]" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
if [ "$data" = /usr/share/datasets/fashion-mnist ] && [ ! -e "$data/train-images-idx3-ubyte.gz" ]; then
  echo "demo: installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  if [ "$(id -u)" = 0 ]; then s=; else s=sudo; fi
  $s apt-get update -qq >/dev/null || true
  $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
cargo build --release --quiet
./target/release/unmix pretrain --config configs/fmnist-moco-unmix.toml --data "$data" \
  --set train.epochs="$epochs" --set eval.knn_every=0 --out "$out"
cat <<MSG

This was the fmnist protocol shortened to $epochs epochs (cosine over $epochs epochs): far from converged. For
reference on this protocol: kNN on raw normalized pixels gives 81.8 %, the untrained network 66-68 %, and
the full 10 epochs reach about 83 % (measured here: 83.42 % with Un-Mix, 83.06 % without). The full
protocol (10 epochs, about 25 minutes on 2 cores), with and without Un-Mix:
  ./target/release/unmix pretrain --config configs/fmnist-moco-unmix.toml --data $data --out runs/fmnist-unmix
  ./target/release/unmix pretrain --config configs/fmnist-moco-unmix.toml --data $data --set unmix.enabled=false --out runs/fmnist-moco
MSG
