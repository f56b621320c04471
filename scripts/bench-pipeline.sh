#!/usr/bin/env bash
# The pipeline benchmark of issue 3: unmix's two-view MoCo v2 pipeline against torchvision's
# transforms with PyTorch's DataLoader, on the same cores, the same recipe and the same real images,
# at 32 px (the 20 real CIFAR-10 test images of the fixtures, in memory) and at 224 px (the 20 real
# ImageNet validation photos that ship in the PyPI wheel foolbox, decoded from JPEG at every access).
#
#   scripts/bench-pipeline.sh [--images N] [--workers "1 2"]
#
# Prints images/second of both and the ratio per worker count; writes runs/bench-pipeline.json.
set -euo pipefail
cd "$(dirname "$0")/.."
images=10240
workers="1 2"
while [ $# -gt 0 ]; do
  case "$1" in
    --images) images="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --images N, --workers \"1 2\")" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || scripts/setup.sh
[ -x target/release/unmix ] || cargo build --release
photos=runs/bench-data/imagenet-photos
if [ ! -d "$photos" ]; then
  mkdir -p runs/bench-data
  .venv/bin/python -m pip download --quiet --no-deps foolbox==3.3.4 -d runs/bench-data
  .venv/bin/python - "$photos" <<'PY'
import glob, sys, zipfile
out = sys.argv[1]
whl = glob.glob("runs/bench-data/foolbox-3.3.4-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("foolbox/data/imagenet_") and n.endswith(".jpg")]
    for n in names:
        z.extract(n, "runs/bench-data/unzipped")
import os, shutil
os.makedirs(out, exist_ok=True)
for p in glob.glob("runs/bench-data/unzipped/foolbox/data/imagenet_*.jpg"):
    shutil.copy(p, out)
print(f"{len(names)} ImageNet photos from {whl} -> {out}", file=sys.stderr)
PY
fi
# The same photos re-encoded as baseline (sequential) JPEG at quality 90, as ImageNet's own files are
# encoded: the foolbox copies are progressive, which costs both decoders about twice as much.
baseline=runs/bench-data/imagenet-photos-baseline
if [ ! -d "$baseline" ]; then
  .venv/bin/python - "$photos" "$baseline" <<'PY'
import glob, os, sys
from PIL import Image
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for p in sorted(glob.glob(os.path.join(src, "*.jpg"))):
    Image.open(p).convert("RGB").save(os.path.join(out, os.path.basename(p)), "JPEG", quality=90, progressive=False)
PY
fi
cifar=crates/unmix-data/tests/fixtures/cifar-10-batches-bin
results=runs/bench-pipeline.json
: > "$results"
printf "%-12s %-8s %16s %16s %8s\n" size workers "unmix img/s" "torchvision img/s" ratio
# 224 px three times: JPEG decoding at every access (as ImageFolder) of the progressive photos and of
# their baseline copies, and decoded once (augmentations alone).
for case in 32 224 224-baseline 224-decoded; do
  src=$cifar; n=$images; size=32; mem=()
  if [ "$case" != 32 ]; then src=$photos; n=$((images / 2)); size=224; fi
  if [ "$case" = 224-baseline ]; then src=$baseline; fi
  if [ "$case" = 224-decoded ]; then mem=(--in-memory); fi
  for w in $workers; do
    u=$(target/release/unmix bench pipeline --source "$src" --size "$size" --images "$n" --workers "$w" "${mem[@]}")
    t=$(.venv/bin/python bench/pipeline_torchvision.py --source "$src" --size "$size" --images "$n" --workers "$w" "${mem[@]}")
    echo "$u" >> "$results"; echo "$t" >> "$results"
    python3 - "$u" "$t" "$case" "$w" <<'PY'
import json, sys
u, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{sys.argv[3]:<12} {sys.argv[4]:<8} {u['images_per_second']:16.0f} {t['images_per_second']:16.0f} {u['images_per_second'] / t['images_per_second']:7.2f}x")
PY
  done
done
echo "(two views per image; images/second per worker = the figure / workers; details in $results)"
