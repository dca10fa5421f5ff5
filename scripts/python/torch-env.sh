#!/usr/bin/env bash
# Makes torch importable in a Python venv (the SDK's: CI's .venv) from a cache outside the checkout, so that
# PyPI's 2.8 GB CUDA-enabled torch (PyPI has no CPU-only wheel; it does not import without the CUDA libraries it
# links) is downloaded and unpacked once per machine, not once per clone:
#   ${CLIPPER_TORCH_CACHE:-~/.cache/clipper-torch}/<key>/wheels/         every wheel of scripts/python/requirements-torch.txt
#   ${CLIPPER_TORCH_CACHE:-~/.cache/clipper-torch}/<key>/site-packages/  those wheels installed (pip install --target)
# <key> is the interpreter's tag (cp311-linux-x86_64) and a hash of the requirements file, which pins every wheel
# (installed --no-deps: nothing is resolved again). An entry is built in a temporary directory and renamed into place,
# so a killed build leaves nothing half-made; builds are serialized with flock; building a new key removes the others
# (the cache holds one torch, 8.1 GB). wheels/ is the download cache (pip's own is not used for them) and a
# find-links directory for building model environments offline (docs/model-containers.md). Then a .pth file in the
# venv's site-packages appends that site-packages to sys.path: the venv's own packages (numpy, ...) come first, and a
# model deployed from this venv records torch==<version>, which this interpreter has, so the container-manager runs
# it here without building an environment.
# Usage: scripts/python/torch-env.sh VENV_DIR. Prints the torch version and the cache entry on its last line.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${1:?usage: scripts/python/torch-env.sh VENV_DIR (the venv that should import torch)}"
python="$venv/bin/python"
requirements="$repo/scripts/python/requirements-torch.txt"
cache="${CLIPPER_TORCH_CACHE:-$HOME/.cache/clipper-torch}"
[ -x "$python" ] || { echo "torch-env.sh: $python is not an executable (make the venv first)" >&2; exit 1; }
command -v flock >/dev/null || { echo "torch-env.sh: flock is missing (util-linux)" >&2; exit 1; }

tag="$("$python" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')"
key="$tag-$(sha256sum <"$requirements" | cut -c1-12)"
entry="$cache/$key"
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9

if [ ! -d "$entry/site-packages" ]; then
  # Under the lock, any other entry or build here is an older key or a build that was killed.
  find "$cache" -mindepth 1 -maxdepth 1 -type d \( -name 'cp*-*' -o -name '.build-*' \) ! -name "$key" -exec rm -rf {} +
  work="$(mktemp -d "$cache/.build-XXXXXX")" && chmod 755 "$work"
  trap 'rm -rf "$work"' EXIT
  echo "torch-env.sh: downloading and installing the wheels of $requirements into $entry (about 2.8 GB, once per machine)" >&2
  started=$SECONDS
  # pip's temporary files go inside the build, so a killed build leaves none in /tmp either.
  mkdir "$work/tmp"
  pip=(env TMPDIR="$work/tmp" "$python" -m pip --disable-pip-version-check --no-input --quiet)
  "${pip[@]}" download --no-cache-dir --only-binary=:all: --no-deps -r "$requirements" -d "$work/wheels"
  "${pip[@]}" install --no-index --find-links "$work/wheels" --no-deps --target "$work/site-packages" -r "$requirements"
  rm -rf "$work/tmp"
  mv -T "$work" "$entry"
  trap - EXIT
  echo "torch-env.sh: built $entry in $((SECONDS - started)) s ($(du -sh "$entry" | cut -f1))" >&2
fi

site="$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
printf '%s\n' "$entry/site-packages" >"$site/clipper-torch.pth"
# The first import also checks that this torch runs here (its CUDA libraries load; CPU inference works).
"$python" -c 'import torch; assert torch.nn.Linear(2, 1)(torch.ones(3, 2)).shape == (3, 1); print("torch", torch.__version__, end="")'
echo " from $entry"
