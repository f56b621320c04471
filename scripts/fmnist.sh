#!/usr/bin/env bash
# Installs Fashion-MNIST (the Debian package dataset-fashion-mnist, into /usr/share/datasets/fashion-mnist)
# when it is missing; does nothing when it is there. Used by demo.sh and the long-run scripts
# (runs-begin.sh), so that a fresh Debian machine needs no step by hand. UNMIX_NO_INSTALL=1 skips it
# (the scripts' tests, which run a stand-in binary that reads no data).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${UNMIX_NO_INSTALL:-0}" = 1 ] && exit 0
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && exit 0
echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
. scripts/apt.sh
apt_install dataset-fashion-mnist
