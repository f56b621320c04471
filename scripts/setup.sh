#!/usr/bin/env bash
# Installs everything unmix needs that cargo does not: a C++ compiler (torch-sys and unmix build
# small C++ wrappers), gloo's headers (Debian libgloo-dev, for multi-process training), and libtorch
# from the PyPI torch wheel in a project-local virtual environment, with the few CUDA headers (PyPI
# wheels) that its NCCL binding needs. Idempotent: a second run checks and returns.
# .cargo/config.toml points the build at .venv/libtorch, and the binary finds it through an rpath,
# so nothing needs exporting.
#
#   scripts/setup.sh                 torch 2.13 (tch 0.26) in .venv: the main build
#   scripts/setup.sh --torch 2.11    torch 2.11 (tch 0.24) in .venv-torch2.11, and a copy of the
#                                    tree in target/torch-2.11 that builds against it (the torch of
#                                    the GPU machines); scripts/test.sh --torch 2.11 tests it
#   scripts/setup.sh --torch auto    the release matching the torch of `python3` on this machine
#
# Each torch release has one tch release: 2.13 <-> tch 0.26, 2.11 <-> tch 0.24.
set -euo pipefail
cd "$(dirname "$0")/.."
want=2.13
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) want="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --torch 2.13|2.11|auto)" >&2; exit 2 ;;
  esac
done
if [ "$want" = auto ]; then
  want=$(python3 -c "import torch; print('.'.join(torch.__version__.split('+')[0].split('.')[:2]))" 2>/dev/null || echo 2.13)
  echo "setup: python3 has torch $want"
fi
case "$want" in
  2.13) TORCH_VERSION=2.13.0; TORCHVISION_VERSION=0.28.0; TCH_VERSION=0.26.0; venv=.venv ;;
  2.11) TORCH_VERSION=2.11.0; TORCHVISION_VERSION=0.26.0; TCH_VERSION=0.24.0; venv=.venv-torch2.11 ;;
  *) echo "setup: torch $want has no matching tch release here; use 2.13 (tch 0.26) or 2.11 (tch 0.24)" >&2; exit 2 ;;
esac

. scripts/apt.sh
debs() { echo "setup: installing Debian packages: $*"; apt_install "$@"; }

command -v g++ >/dev/null || debs g++
# gloo's headers for the c10d binding (csrc/dist.cpp): the torch wheel ships c10d's, not gloo's.
[ -f /usr/include/gloo/algorithm.h ] || debs libgloo-dev
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; debs python3-venv; python3 -m venv "$venv"; }
fi
if ! "$venv/bin/python" -c "import torch, torchvision, safetensors, tensorboard, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION' or torchvision.__version__.split('+')[0] != '$TORCHVISION_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION (libtorch) and torchvision into $venv; this downloads a few GB once"
  # numpy, pillow, safetensors and tensorboard: the tests read unmix's outputs with them.
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" numpy pillow safetensors tensorboard
fi
torch_dir=$("$venv/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))")
# The NCCL process group (csrc/dist_nccl.cpp, for multi-process CUDA training) compiles against CUDA
# headers that torch's own CUDA wheels leave out: crt/ (nvidia-cuda-crt, 134 kB) and nv/target
# (nvidia-cuda-cccl, 3.1 MB), both into the venv's nvidia/cu*/include, at the versions that
# torch's cuda-toolkit pins. build.rs builds NCCL support only when they are there (Gloo otherwise).
cuda_inc=$(ls -d "$(dirname "$torch_dir")"/nvidia/cu*/include 2>/dev/null | head -1 || true)
if [ -f "$torch_dir/lib/libtorch_cuda.so" ] && [ -n "$cuda_inc" ] && { [ ! -f "$cuda_inc/crt/host_config.h" ] || [ ! -e "$cuda_inc/nv/target" ]; }; then
  cuda_toolkit=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('cuda-toolkit'))" 2>/dev/null || true)
  if [ -n "$cuda_toolkit" ]; then
    echo "setup: installing the CUDA headers for NCCL into $venv (cuda-toolkit[crt,cccl]==$cuda_toolkit, about 3 MB)"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "cuda-toolkit[crt,cccl]==$cuda_toolkit" \
      || echo "setup: warning: the CUDA headers did not install; unmix builds without NCCL (multi-process CUDA runs use Gloo)"
  fi
fi
ln -sfn "$torch_dir" "$venv/libtorch"

# Sample photos for the "pretrain on your photos" quickstart and its test: the real photos that
# ship inside two PyPI wheels (downloaded, not installed): foolbox's 20 ImageNet and 40 CIFAR
# samples and scikit-image's 18 colour and greyscale photos, into data/photos/ (two subfolders;
# unlabeled). Labeled: foolbox's 20 CIFAR-10 samples by class into data/photos-labeled/CLASS/.
if [ ! -f data/photos/.complete ]; then
  echo "setup: fetching sample photos (the foolbox and scikit-image wheels, about 15 MB) into data/photos"
  tmp=$(mktemp -d)
  "$venv/bin/python" -m pip download --disable-pip-version-check -q --no-deps "foolbox==3.3.4" "scikit-image==0.26.0" -d "$tmp"
  "$venv/bin/python" - "$tmp" <<'PY'
import glob, os, re, sys, zipfile
tmp = sys.argv[1]
cifar10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
os.makedirs("data/photos/foolbox", exist_ok=True)
os.makedirs("data/photos/scikit-image", exist_ok=True)
skip = {"chessboard_GRAY.png", "chessboard_RGB.png", "microaneurysms.png", "phantom.png", "logo.png", "text.png", "page.png", "cell.png"}
for wheel in glob.glob(os.path.join(tmp, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            base = os.path.basename(name)
            if re.fullmatch(r"foolbox/data/(imagenet|cifar10|cifar100)_\d+_\d+\.(png|jpg)", name):
                with open(os.path.join("data/photos/foolbox", base), "wb") as f:
                    f.write(z.read(name))
                m = re.fullmatch(r"cifar10_\d+_(\d+)\.png", base)
                if m:
                    d = os.path.join("data/photos-labeled", cifar10[int(m.group(1))])
                    os.makedirs(d, exist_ok=True)
                    with open(os.path.join(d, base), "wb") as f:
                        f.write(z.read(name))
            elif re.fullmatch(r"skimage/data/[^/]+\.(png|jpg)", name) and base not in skip:
                with open(os.path.join("data/photos/scikit-image", base), "wb") as f:
                    f.write(z.read(name))
PY
  rm -rf "$tmp"
  touch data/photos/.complete
fi

if [ "$want" != 2.13 ]; then
  # The variant: the tracked tree copied to target/torch-$want with tch pinned to its release and
  # .cargo/config.toml pointing at this venv's libtorch (its own Cargo.lock and target folder).
  variant="target/torch-$want"
  mkdir -p "$variant"
  git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$variant"
  sed -i -E "s/^tch = \"=[0-9.]+\"/tch = \"=$TCH_VERSION\"/; s/^torch-sys = \"=[0-9.]+\"/torch-sys = \"=$TCH_VERSION\"/" "$variant/Cargo.toml"
  grep -q "tch = \"=$TCH_VERSION\"" "$variant/Cargo.toml" || { echo "setup: could not pin tch $TCH_VERSION in $variant/Cargo.toml" >&2; exit 1; }
  sed -i -E "s#^LIBTORCH = .*#LIBTORCH = { value = \"../../$venv/libtorch\", relative = true }#" "$variant/.cargo/config.toml"
  # The tests' Python (torchvision checks, PyTorch benchmarks) is the variant's own .venv.
  ln -sfn "$(pwd)/$venv" "$variant/.venv"
  # The sample photos the quickstart test runs on.
  ln -sfn "$(pwd)/data" "$variant/data"
  echo "setup: $variant builds against torch $TORCH_VERSION (tch $TCH_VERSION): cd $variant && cargo build --release"
fi
