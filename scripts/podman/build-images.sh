#!/usr/bin/env bash
# Makes the container images the container-engine backend's tests run models in, with Podman, without pulling:
#   1. localhost/clipper-base:bookworm-<key>: a Debian bookworm root filesystem made by debootstrap (minbase, plus
#      python3 and python3-venv) from this machine's Debian mirror, tarred and `podman import`ed;
#   2. localhost/clipper-python-runtime:<key>: deploy/images/python-runtime.Dockerfile built FROM that base
#      (a venv with the runtime's packages from PyPI, the SDK's sources), tagged also :latest.
# The rootfs tarball is cached in ${CLIPPER_PODMAN_CACHE:-~/.cache/clipper-podman}, keyed by its recipe (suite, variant,
# packages); <key> is a hash of the recipe, this script, the Dockerfile and sdk/python/src, so a change to any of them
# makes a new runtime image (podman's layer cache keeps the pip step while the Dockerfile's part before it is unchanged).
# Prints the runtime image's name on its last line. Needs root (debootstrap), podman and runc.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${CLIPPER_PODMAN_CACHE:-$HOME/.cache/clipper-podman}"
mirror="${CLIPPER_DEBIAN_MIRROR:-}"
dockerfile="$repo/deploy/images/python-runtime.Dockerfile"
# crun fails on this machine's hybrid cgroups (docs/containers.md).
podman=(podman --runtime "${CLIPPER_PODMAN_RUNTIME:-runc}")

for tool in podman debootstrap runc tar sha256sum flock; do
  command -v "$tool" >/dev/null || { echo "build-images.sh: $tool is missing (apt-get install -y podman runc debootstrap)" >&2; exit 1; }
done
for f in "$dockerfile" "$dockerfile.dockerignore"; do [ -f "$f" ] || { echo "build-images.sh: $f is missing" >&2; exit 1; }; done

if [ -z "$mirror" ]; then
  # The mirror apt already uses here (deb822 sources or a classic sources.list), else Debian's CDN.
  mirror="$(grep -hoE '^URIs: *https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed -E 's/^URIs: *//')"
  [ -n "$mirror" ] || mirror="$(grep -hoE '^deb +https?://[^ ]+/debian/? +bookworm' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}')"
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
fi

suite=bookworm
variant=minbase
# python3-venv brings ensurepip, which the Dockerfile's `python3 -m venv` needs.
packages=python3,python3-venv,ca-certificates
rootfs_key="$(printf '%s %s %s' "$suite" "$variant" "$packages" | sha256sum | cut -c1-12)"
sdk_key="$(cd "$repo" && find sdk/python/src -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
image_key="$(cat "${BASH_SOURCE[0]}" "$dockerfile" "$dockerfile.dockerignore" | sha256sum | cut -c1-12)"
image_key="$(printf '%s %s %s' "$rootfs_key" "$image_key" "$sdk_key" | sha256sum | cut -c1-12)"
base="localhost/clipper-base:$suite-$rootfs_key"
runtime="localhost/clipper-python-runtime:$image_key"
tarball="$cache/rootfs-$suite-$rootfs_key.tar"
# The build trusts what this machine trusts (a network that inspects TLS has its own CA in the host's bundle).
ca_bundle="${CLIPPER_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$cache"
# One build at a time (tests running side by side each call this script).
exec 9>"$cache/build.lock"
flock 9

if "${podman[@]}" image exists "$runtime"; then
  "${podman[@]}" tag "$runtime" localhost/clipper-python-runtime:latest
  echo "$runtime"
  exit 0
fi

if [ ! -f "$tarball" ]; then
  work="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "build-images.sh: debootstrap $suite from $mirror (a few minutes, once)" >&2
  debootstrap --variant="$variant" --include="$packages" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  # apt's package lists and caches are not needed in an image.
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" --numeric-owner -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi

if ! "${podman[@]}" image exists "$base"; then
  "${podman[@]}" import --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null 2>&1
fi

ca_mounts=()
if [ -f "$ca_bundle" ]; then
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$cache/pip.conf"
  # Build-time mounts only: neither file stays in the image.
  ca_mounts=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro" -v "$cache/pip.conf:/etc/pip.conf:ro")
fi

echo "build-images.sh: podman build $runtime FROM $base" >&2
# Host networking for pip (the default bridge routes to a private range here); explicit ulimits (root lacks
# CAP_SYS_RESOURCE, so the runtime's defaults cannot be set); --pull=never: nothing can be pulled.
"${podman[@]}" build --pull=never --network host \
  --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 "${ca_mounts[@]}" \
  --build-arg "PYTHON_IMAGE=$base" \
  --ignorefile "$dockerfile.dockerignore" -f "$dockerfile" -t "$runtime" "$repo" >&2
"${podman[@]}" tag "$runtime" localhost/clipper-python-runtime:latest
# Runtime images of older keys would pile up: remove them (one a container still uses stays: rmi refuses it).
# The build's intermediate images stay, as podman's layer cache (the pip step is reused while it is unchanged).
for old in $("${podman[@]}" images --format '{{.Repository}}:{{.Tag}}' localhost/clipper-python-runtime); do
  case "$old" in "$runtime" | localhost/clipper-python-runtime:latest) ;; *) "${podman[@]}" rmi "$old" >/dev/null 2>&1 || true ;; esac
done
echo "$runtime"
