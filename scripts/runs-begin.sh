# Sourced by the long-run scripts (seed-table, equal-compute, swav-diagnosis, methods-table) after
# they parse their arguments: `runs_begin DIR` picks the binary (UNMIX_BIN, a copy that a rebuild
# cannot change under a run of hours, or target/release/unmix, built when missing), installs
# Fashion-MNIST when it is missing (scripts/fmnist.sh; a run given another data folder goes on without
# it), creates DIR and appends the start time and machine class to DIR/machine.txt, which every figure
# of DIR names.
runs_begin() {
  bin="${UNMIX_BIN:-target/release/unmix}"
  [ -x "$bin" ] || { scripts/setup.sh; cargo build --release; }
  scripts/fmnist.sh || echo "warning: Fashion-MNIST could not be installed (scripts/fmnist.sh); runs that read it will fail" >&2
  mkdir -p "$1"
  {
    date -u +"started %Y-%m-%dT%H:%MZ"
    scripts/machine.sh
  } >> "$1/machine.txt"
}
