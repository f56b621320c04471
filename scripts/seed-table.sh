#!/usr/bin/env bash
# Un-Mix's gain over seeds on the fmnist protocol (issue 17): `unmix compare --seeds 3` for the
# paper's four base methods (MoCo, SimCLR, BYOL, SwAV), base vs + Un-Mix on the same seeds, each
# with its shipped config (configs/fmnist-<method>-unmix.toml, fp32), then MoCo base vs + Un-Mix
# at 50 epochs (one seed), the longer horizon the paper's claim is about. One run at a time.
#
#   scripts/seed-table.sh [--out DIR] [--only "moco simclr ..."] [--table]
#
# Long (hours per method on 2 cores): start it in the background with a copy of the binary
# (UNMIX_BIN=/path/to/unmix) and start it again after any interruption: finished runs are read
# back, an interrupted one resumes from its last checkpoint (`unmix compare` does both).
# Each finished run also gets the kNN of its pooled backbone features (knn-backbone.txt), a
# readout that suits the non-contrastive methods better than the projector output, read after each
# seed's pair while the checkpoints are here (they are not kept in the repository).
# `--table` only prints the tables of what has finished (every finished pair, also of a job still running;
# for a run longer than 10 epochs also its kNN curve, arm by arm). Results go to DIR (default
# results/fmnist-seeds), whose run records (not the weights) are kept in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/fmnist-seeds
only="moco simclr moco-50ep byol swav"
table_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --table) table_only=1; shift ;;
    *) echo "unknown argument $1 (use --out DIR, --only \"moco simclr moco-50ep byol swav\", --table)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

if [ "$table_only" = 0 ]; then
  . scripts/runs-begin.sh
  runs_begin "$out"
  for job in $only; do
    case "$job" in
      moco-50ep) cfg=configs/fmnist-moco-unmix.toml; seeds=1; args=(--set train.epochs=50 --set eval.knn_every=10) ;;
      moco|simclr|byol|swav) cfg=configs/fmnist-$job-unmix.toml; seeds=3; args=() ;;
      *) echo "unknown job $job" >&2; exit 2 ;;
    esac
    echo "== $job ($cfg --seeds $seeds ${args[*]}) -> $out/$job  $(date -u +%H:%MZ)"
    # One seed's pair at a time (`compare --seeds n` reads seeds 0..n-2 back and trains seed n-1),
    # so each finished run's backbone kNN is read while its checkpoint is on this machine, not only
    # after the whole job: a machine that goes away mid-job takes no finished readout with it.
    for n in $(seq 1 "$seeds"); do
      "$bin" compare --config "$cfg" --seeds "$n" ${args[@]+"${args[@]}"} --quiet --out "$out/$job"
      for run in "$out/$job"/*-seed*/; do
        ck="$run/checkpoints/last.safetensors"
        if [ ! -s "$run/knn-backbone.txt" ] && [ -f "$ck" ] && [ -f "$run/summary.json" ]; then
          "$bin" knn --checkpoint "$ck" --set 'eval.features="backbone"' > "$run/knn-backbone.txt"
        fi
      done
    done
  done
fi

# The tables, from the compare.json files and backbone kNN lines of what has finished.
python3 - "$out" $only <<'PY'
# Read from each run's own summary.json, so a job whose seeds have not all finished shows what has:
# the pairs (base and + Un-Mix of one seed, both finished) and the count of runs still unpaired.
import json, os, re, statistics, sys
out, jobs = sys.argv[1], sys.argv[2:]
def ms(v):
    if not v: return "-"
    if len(v) == 1: return "%.2f" % v[0]
    return "%.2f +- %.2f" % (statistics.mean(v), statistics.stdev(v))
def finished(job):
    """{(arm, seed): (summary, backbone kNN or None)} of the finished runs of a job."""
    runs, d = {}, os.path.join(out, job)
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        m = re.fullmatch(r"(base|unmix)-seed(\d+)", name)
        p = os.path.join(d, name, "summary.json")
        if not m or not os.path.exists(p): continue
        s = json.load(open(p))
        if not isinstance(s.get("knn", {}).get("top1"), float) or s.get("epochs") != s.get("epochs_planned", s.get("epochs")): continue
        b = os.path.join(d, name, "knn-backbone.txt")
        k = re.search(r"kNN top-1: ([0-9.]+)%", open(b).read()) if os.path.exists(b) else None
        runs[(m.group(1), int(m.group(2)))] = (s, float(k.group(1)) if k else None)
    return runs
for title, key in (("kNN top-1 (%) on the configured readout (head output), test split", "head"),
                   ("kNN top-1 (%) on the pooled backbone features, test split", "backbone")):
    print("\n" + title + "\n")
    print("| method | epochs | seeds | base | + Un-Mix | per-seed difference | mean difference | machine | training hours |")
    print("|---|---|---|---|---|---|---|---|---|")
    for job in jobs:
        runs = finished(job)
        seeds = sorted({s for (a, s) in runs if ("base", s) in runs and ("unmix", s) in runs})
        alone = len(runs) - 2 * len(seeds)
        if not seeds:
            print("| %s | | | (no finished pair yet%s) | | | | | |" % (job, ", %d run alone" % alone if alone else "")); continue
        get = lambda arm, s: runs[(arm, s)][0]["knn"]["top1"] if key == "head" else runs[(arm, s)][1]
        # A pair whose backbone kNN was not read (its checkpoints gone) is left out and named.
        missing = [s for s in seeds if get("base", s) is None or get("unmix", s) is None]
        seeds = [s for s in seeds if s not in missing]
        unread = "seed%s %s" % ("s" if len(missing) > 1 else "", ", ".join(map(str, missing)))
        if not seeds:
            print("| %s | | | (backbone kNN not read for %s) | | | | | |" % (job, unread)); continue
        pairs = [(get("base", s), get("unmix", s)) for s in seeds]
        d = [u - b for b, u in pairs]
        # Each run's machine and wall time: a pair is exact only within one machine class.
        ss = [runs[(arm, s)][0] for s in seeds for arm in ("base", "unmix")]
        machines = "; ".join(sorted({r.get("machine", "not recorded") for r in ss}))
        # train_seconds (in every summary) sums the training epochs of every part of a resumed run
        # (wall_seconds only the last part's process); evaluation passes are not in it.
        hours = sum(r["train_seconds"] for r in ss) / 3600
        label = ss[0]["method"] + (" (+ %d unpaired run)" % alone if alone else "") + (" (%s: not read)" % unread if missing else "")
        print("| %s | %d | %s | %s | %s | %s | %+.2f | %s | %.1f |" % (label, ss[0]["epochs"], ", ".join(map(str, seeds)),
              ms([b for b, _ in pairs]), ms([u for _, u in pairs]), " / ".join("%+.2f" % x for x in d),
              statistics.mean(d), machines, hours))
# The longer horizon: the kNN curve of each arm of a run planned for more than 10 epochs (its
# knn_every passes in metrics.jsonl), to show whether the gap grows, holds or closes.
for job in jobs:
    curves = {}
    for arm in ("base", "unmix"):
        p = os.path.join(out, job, arm + "-seed0", "metrics.jsonl")
        if os.path.exists(p):
            curves[arm] = {r["epoch"]: r["knn_top1"] for r in map(json.loads, open(p)) if "knn_top1" in r}
    epochs = sorted(set(curves.get("base", {})) | set(curves.get("unmix", {})))
    if len(epochs) < 2 or epochs[-1] <= 10: continue
    print("\nkNN top-1 (%%) on the head output during the run, %s, seed 0\n" % job)
    print("| epoch | " + " | ".join(map(str, epochs)) + " |")
    print("|---|" + "---|" * len(epochs))
    f = lambda v: "%.2f" % v if v is not None else "-"
    for arm, name in (("base", "base"), ("unmix", "+ Un-Mix")):
        print("| %s | " % name + " | ".join(f(curves.get(arm, {}).get(e)) for e in epochs) + " |")
    gaps = [curves["unmix"][e] - curves["base"][e] if e in curves.get("base", {}) and e in curves.get("unmix", {}) else None for e in epochs]
    print("| difference | " + " | ".join("%+.2f" % g if g is not None else "-" for g in gaps) + " |")
PY
