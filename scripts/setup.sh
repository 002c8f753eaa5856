#!/usr/bin/env bash
# Installs what Likeness needs to build, once; a second run takes about a second.
#  1. Debian packages: a C/C++ toolchain, cmake and OpenBLAS (faiss is built from source),
#     nasm (libjpeg-turbo's SIMD decoder, built from source for fast scaled JPEG decoding),
#     python3-venv (for the libtorch wheel), GTK 3 (native file dialogs through rfd), the
#     X11/Wayland/OpenGL libraries the window opens with, and for `make install` / `make
#     dist`: patchelf (relative rpaths), desktop-file-utils (checks the launcher entry) and
#     zstd (the archive).
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
  patchelf desktop-file-utils zstd procps
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
