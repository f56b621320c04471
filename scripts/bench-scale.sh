#!/usr/bin/env bash
# How unmix's costs grow with the data (issue 35, item 3): an ImageNet-sized ImageFolder tree
# (1000 classes, 1,281,167 small real JPEGs cut from the photos setup.sh fetches,
# bench/make_imagenet_tree.py) on this machine's disk, and at 10k, 100k and 1.28M images:
#   - folder indexing time and the resident memory it adds (per file),
#   - time to the first two-view MoCo v2 batch at 224 px (shuffling every index, starting workers),
#   - loader throughput at 224 px over --steps batches of --batch,
# then weighted kNN (k 200, 10k queries, 128-d) against banks of 60k, 600k and 1.28M entries:
# time and the process's peak memory. Each measurement is a process of its own (`unmix bench
# folder`, `unmix bench knn-bank`); the tree is written first, so indexing reads a warm page cache.
# The record (JSON lines, first line the machine) goes to OUT.jsonl, the log-log charts
# (`unmix bench scale-plot`) to OUT-{time,memory,loader}.png/.svg; the tree is removed at the end
# unless --keep. About 6 GiB of disk and 15 minutes on 2 cores; run it on an otherwise idle machine.
#
#   scripts/bench-scale.sh --out results/bench/NAME [--dir /var/tmp/unmix-scale] [--steps 200]
#                          [--batch 64] [--sizes "10000 100000 full"] [--banks "60000 600000 1281167"]
#                          [--files 1281167] [--keep]
# (--files: the full tree's size; smaller values with --sizes "10000 full" make a quick check.)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=/var/tmp/unmix-scale
out=""
steps=200
batch=64
sizes="10000 100000 full"
banks="60000 600000 1281167"
files=1281167
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --banks) banks="$2"; shift 2 ;;
    --files) files="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1 (use --out PREFIX, --dir DIR, --steps N, --batch N, --sizes \"...\", --banks \"...\", --files N, --keep)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "name the record: --out results/bench/NAME (NAME.jsonl and NAME-*.png are written)" >&2; exit 2; }
[ -x .venv/bin/python ] && [ -f data/photos/.complete ] || scripts/setup.sh
[ -x target/release/unmix ] || cargo build --release
u=target/release/unmix
machine=$(scripts/machine.sh)
echo "machine: $machine"
mkdir -p "$(dirname "$out")"
python3 -c 'import json, sys; print(json.dumps({"what": "machine", **json.loads(sys.argv[1]), "commit": sys.argv[2], "date": sys.argv[3]}))' \
  "$(scripts/machine.sh --json)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')" \
  "$(date -u +%Y-%m-%dT%H:%MZ)" > "$out.jsonl"

subsets=$(echo "$sizes" | tr ' ' '\n' | grep -v '^full$' | paste -sd, -)
if [ ! -f "$dir/.complete" ]; then
  echo "writing the tree under $dir (not timed)"
  rm -rf "$dir"
  .venv/bin/python bench/make_imagenet_tree.py "$dir" --files "$files" --subsets "$subsets"
  touch "$dir/.complete"
fi
# Removed at the end; kept after a failure, so a rerun skips the writing (rm -rf it yourself).
[ "$keep" = 1 ] || trap 'if [ $? = 0 ]; then echo "removing $dir"; rm -rf "$dir"; else echo "kept $dir for a rerun"; fi' EXIT

for s in $sizes; do
  echo "folder $dir/$s: index, first batch, $steps batches of $batch at 224 px"
  "$u" bench folder --root "$dir/$s" --steps "$steps" --batch "$batch" | tee -a "$out.jsonl"
done
for b in $banks; do
  echo "kNN bank of $b entries, 10k queries"
  "$u" bench knn-bank --bank "$b" | tee -a "$out.jsonl"
done
plots=$(mktemp -d)
"$u" bench scale-plot --record "$out.jsonl" --out "$plots" --machine "${machine%%;*}"
for f in time memory loader; do
  mv "$plots/scale-$f.png" "$out-$f.png"
  mv "$plots/scale-$f.svg" "$out-$f.svg"
done
rmdir "$plots"
python3 - "$out.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'images':>10} {'index s':>8} {'B/file':>7} {'1st batch s':>11} {'img/s':>7}")
for r in rows:
    if r["what"] == "folder":
        print(f"{r['files']:>10} {r['index_seconds']:8.2f} {r['bytes_per_file']:7.0f} {r['first_batch_seconds']:11.2f} {r['images_per_second']:7.0f}")
print(f"{'bank':>10} {'kNN s':>8} {'peak GiB':>8} {'us/query/1k':>11}")
for r in rows:
    if r["what"] == "knn-bank":
        print(f"{r['bank']:>10} {r['seconds']:8.2f} {r['peak_rss_gib']:8.2f} {r['microseconds_per_query_per_1k_bank']:11.3f}")
PY
