#!/usr/bin/env bash
# Installs everything unmix needs that cargo does not: a C++ compiler (torch-sys and unmix build
# small C++ wrappers), gloo's headers (Debian libgloo-dev, for multi-process training), and libtorch from the PyPI torch wheel in a project-local virtual environment
# (.venv), with the few CUDA headers (PyPI wheels) that its NCCL binding needs. Idempotent: a second
# run checks and returns. .cargo/config.toml points the build at .venv/libtorch, and the binary
# finds it through an rpath, so nothing needs exporting.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.13.0   # the libtorch version tch 0.26 expects
TORCHVISION_VERSION=0.28.0   # its torchvision: the export test loads our weights into torchvision's ResNet

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "setup: installing Debian packages: $*"
  as_root apt-get update -qq >/dev/null || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v g++ >/dev/null || apt_install g++
# gloo's headers for the c10d binding (csrc/dist.cpp): the torch wheel ships c10d's, not gloo's.
[ -f /usr/include/gloo/algorithm.h ] || apt_install libgloo-dev
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; python3 -m venv .venv; }
fi
if ! .venv/bin/python -c "import torch, torchvision, safetensors, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION' or torchvision.__version__.split('+')[0] != '$TORCHVISION_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION (libtorch) and torchvision into .venv; this downloads a few GB once"
  .venv/bin/python -m pip install --disable-pip-version-check -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" numpy pillow safetensors
fi
torch_dir=$(.venv/bin/python -c "import os, torch; print(os.path.dirname(torch.__file__))")
# The NCCL process group (csrc/dist_nccl.cpp, for multi-process CUDA training) compiles against CUDA
# headers that torch's own CUDA wheels leave out: crt/ (nvidia-cuda-crt, 134 kB) and nv/target
# (nvidia-cuda-cccl, 3.1 MB), both into .venv's nvidia/cu13/include, at the versions that torch's
# cuda-toolkit pins. build.rs builds NCCL support only when they are there (Gloo otherwise).
cuda_inc="$(dirname "$torch_dir")/nvidia/cu13/include"
if [ -f "$torch_dir/lib/libtorch_cuda.so" ] && { [ ! -f "$cuda_inc/crt/host_config.h" ] || [ ! -e "$cuda_inc/nv/target" ]; }; then
  cuda_toolkit=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('cuda-toolkit'))" 2>/dev/null || true)
  if [ -n "$cuda_toolkit" ]; then
    echo "setup: installing the CUDA headers for NCCL into .venv (cuda-toolkit[crt,cccl]==$cuda_toolkit, about 3 MB)"
    .venv/bin/python -m pip install --disable-pip-version-check -q "cuda-toolkit[crt,cccl]==$cuda_toolkit" \
      || echo "setup: warning: the CUDA headers did not install; unmix builds without NCCL (multi-process CUDA runs use Gloo)"
  fi
fi
ln -sfn "$torch_dir" .venv/libtorch
