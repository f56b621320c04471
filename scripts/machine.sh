#!/usr/bin/env bash
# The machine class every figure names, in one place for every script (test.sh, demo.sh, bench.sh,
# seed-table.sh); the binary writes the same line into each run's summary.json
# (src/train/summary.rs::machine, which a test holds to this script's output).
#
#   scripts/machine.sh                 "CPU MODEL, N cores (family F model M); avx2 fma ..."
#   scripts/machine.sh --json          the same fields as one JSON object
#   scripts/machine.sh --native-bf16   exit status 0 when the CPU computes bf16 natively
#                                      (AVX-512 BF16 or AMX) and ONEDNN_MAX_CPU_ISA does not cap it
#                                      at AVX2; emulated bf16 is slower than fp32
set -euo pipefail
info=${UNMIX_CPUINFO:-/proc/cpuinfo}  # UNMIX_CPUINFO: a saved copy, for the tests
[ -r "$info" ] || info=/dev/null
field() { grep -m1 "^$1[[:space:]]*:" "$info" | cut -d: -f2- | sed 's/^ *//; s/ *$//' || true; }
model=$(field 'model name')
[ -n "$model" ] || model=$(uname -m)
family=$(field 'cpu family')
cpumodel=$(field model)
# The cores the process may use (affinity); OMP_NUM_THREADS must not change the answer.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
all=" $(field flags) "
flags=""
for f in avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile; do
  case "$all" in *" $f "*) flags="$flags${flags:+ }$f" ;; esac
done
case "${1:-}" in
  "")
    echo "$model, $cores cores (family ${family:-?} model ${cpumodel:-?}); ${flags:-no avx2}" ;;
  --json)
    python3 -c 'import json, sys; print(json.dumps(dict(zip(["cpu", "cores", "family", "model", "flags"], sys.argv[1:]))))' \
      "$model" "$cores" "${family:-?}" "${cpumodel:-?}" "$flags" ;;
  --native-bf16)
    case " $flags " in *" avx512_bf16 "*|*" amx_bf16 "*) ;; *) exit 1 ;; esac
    [ "${ONEDNN_MAX_CPU_ISA:-}" != AVX2 ] ;;
  *) echo "usage: scripts/machine.sh [--json | --native-bf16]" >&2; exit 2 ;;
esac
