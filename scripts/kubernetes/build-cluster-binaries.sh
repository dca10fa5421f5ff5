#!/usr/bin/env bash
# Builds, once, the binaries of a real Kubernetes cluster on loopback (see docs/kubernetes-testing.md):
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (Kubernetes v1.37.2), etcd v3.6.16
# and kwok v0.8.0, all from the Go module proxy, into a cache directory outside the repository:
#
#   ${CLIPPER_K8S_CACHE:-$HOME/.cache/clipper-k8s}/v1.37.2/bin/
#   ${CLIPPER_K8S_CACHE:-$HOME/.cache/clipper-k8s}/v1.37.2/kwok-stages.yaml   (kwok's stages, concatenated)
#
# The Go build cache and module cache used for this build also live under the cache directory
# (go-build/ and go-mod/), so one `rm -rf` of it undoes everything and the user's own Go caches are
# untouched. Override with CLIPPER_K8S_GOCACHE / CLIPPER_K8S_GOMODCACHE.
#
# A binary is skipped when it exists and its stamp (bin/.<name>.stamp) names the same version and
# build flags. A cold build takes about 15 minutes on 2 cores; a warm run takes well under a second.
# Runs unattended (no stdin); exits non-zero with a message naming the step that failed.
#
# Usage: scripts/kubernetes/build-cluster-binaries.sh [--force]
set -euo pipefail

K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.37.2 # k8s.io/<staging module> versions that go with Kubernetes v1.37.2
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

CACHE="${CLIPPER_K8S_CACHE:-$HOME/.cache/clipper-k8s}"
ROOT="$CACHE/$K8S_VERSION"
BIN="$ROOT/bin"
WORK="$ROOT/work"
export GOCACHE="${CLIPPER_K8S_GOCACHE:-$CACHE/go-build}"
export GOMODCACHE="${CLIPPER_K8S_GOMODCACHE:-$CACHE/go-mod}"
export GOFLAGS="-buildvcs=false -modcacherw"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
: "${GOPROXY:=https://proxy.golang.org,direct}"
export GOPROXY

force=0
[ "${1:-}" = "--force" ] && force=1

start=$(date +%s)
log() { printf '[build-cluster-binaries %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - start))" "$*"; }
die() {
  printf '[build-cluster-binaries] FAILED: %s\n' "$*" >&2
  printf '[build-cluster-binaries] cache: %s (what was built is kept: rerun to resume; delete it to start from scratch)\n' "$CACHE" >&2
  exit 1
}
trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR

command -v go >/dev/null 2>&1 || die "go is not installed (Go >= 1.25 is needed to build Kubernetes $K8S_VERSION)"
mkdir -p "$BIN" "$WORK" "$GOCACHE" "$GOMODCACHE" || die "cannot create $ROOT"

# One build at a time per cache (CI and a developer may start it together).
exec 9>"$ROOT/.build.lock"
if ! flock -n 9; then
  log "another build holds $ROOT/.build.lock; waiting for it (at most 60 min)"
  flock -w 3600 9 || die "timed out waiting for $ROOT/.build.lock"
fi

K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

# A stamp's first line says what was built; the Go version (second line) is informational, so a Go
# upgrade on the machine does not force a rebuild.
stamp_of() { # name version ldflags
  printf '%s %s ldflags=%s\n' "$1" "$2" "$3"
}
is_built() { # name version ldflags
  [ "$force" = 0 ] && [ -x "$BIN/$1" ] && [ -f "$BIN/.$1.stamp" ] &&
    [ "$(head -n1 "$BIN/.$1.stamp")" = "$(stamp_of "$1" "$2" "$3")" ]
}
reports_version() { # name: the binary prints $K8S_VERSION (grep without -q: -q breaks the pipe under pipefail)
  if [ "$1" = kubectl ]; then "$BIN/kubectl" version --client 2>/dev/null; else "$BIN/$1" --version 2>/dev/null; fi |
    grep -F "$K8S_VERSION" >/dev/null
}
built=0
write_stamp() {
  { stamp_of "$1" "$2" "$3" && echo "built with $(go env GOVERSION) on $(date -u +%Y-%m-%dT%H:%M:%SZ)"; } >"$BIN/.$1.stamp"
  built=1
}

log "cache $ROOT; GOCACHE=$GOCACHE; GOMODCACHE=$GOMODCACHE; $(go version)"

# --- Kubernetes: a wrapper module, because `go install k8s.io/kubernetes/cmd/...@v` refuses modules with
# replace directives. The wrapper requires k8s.io/kubernetes and repeats its staging replaces, pointing
# each at the published module of the matching version instead of ./staging/src/....
missing=()
for b in "${K8S_BINARIES[@]}"; do is_built "$b" "$K8S_VERSION" "$K8S_LDFLAGS" || missing+=("$b"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "kubernetes $K8S_VERSION: building ${missing[*]} (cold: ~14 min on 2 cores)"
  mod="$WORK/kubernetes"
  mkdir -p "$mod"
  info=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" 2>&1) ||
    die "cannot download k8s.io/kubernetes@$K8S_VERSION (GOPROXY=$GOPROXY): $(grep -m1 '"Error"' <<<"$info" || echo "$info")"
  upstream_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$info")
  [ -f "$upstream_mod" ] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION (got '$upstream_mod')"
  replaces=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/src/\1[[:space:]]*$#\1#p' "$upstream_mod")
  [ -n "$replaces" ] || die "found no staging replace directives in $upstream_mod"
  go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_mod" | head -1)
  {
    echo "// Generated by scripts/kubernetes/build-cluster-binaries.sh"
    echo "module clipper.local/k8s-cluster-binaries"
    echo
    echo "go ${go_line:-1.25}"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $K8S_STAGING_VERSION"; done <<<"$replaces"
    echo ")"
  } >"$mod/go.mod"
  log "kubernetes: wrapper module with $(wc -l <<<"$replaces") replace directives ($mod/go.mod)"
  pkgs=()
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "kubernetes: resolving modules (go get)"
  (cd "$mod" && go get "${pkgs[@]/%/@$K8S_VERSION}") || die "go get of ${pkgs[*]} failed"
  log "kubernetes: compiling (go build; quiet for many minutes on a cold cache)"
  (cd "$mod" && go build -trimpath -ldflags "$K8S_LDFLAGS" -o "$BIN/" "${pkgs[@]}") || die "go build of ${pkgs[*]} failed"
  for b in "${missing[@]}"; do
    reports_version "$b" || die "$BIN/$b does not report version $K8S_VERSION"
    write_stamp "$b" "$K8S_VERSION" "$K8S_LDFLAGS"
  done
  log "kubernetes: done"
else
  log "kubernetes $K8S_VERSION: ${K8S_BINARIES[*]} already built"
fi

# --- etcd 3.6 (Debian's 3.4 lacks RequestWatchProgress: the apiserver's watches then fail every ~30 s).
ETCD_LDFLAGS="-s -w"
if ! is_built etcd "$ETCD_VERSION" "$ETCD_LDFLAGS"; then
  log "etcd $ETCD_VERSION: building"
  mod="$WORK/etcd"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<EOF
// Generated by scripts/kubernetes/build-cluster-binaries.sh
module clipper.local/etcd-binary

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION") || die "go get go.etcd.io/etcd/server/v3@$ETCD_VERSION failed"
  (cd "$mod" && go build -trimpath -ldflags "$ETCD_LDFLAGS" -o "$BIN/etcd" go.etcd.io/etcd/server/v3) || die "go build of etcd failed"
  "$BIN/etcd" --version | grep -F "${ETCD_VERSION#v}" >/dev/null || die "$BIN/etcd does not report version $ETCD_VERSION"
  write_stamp etcd "$ETCD_VERSION" "$ETCD_LDFLAGS"
  log "etcd: done"
else
  log "etcd $ETCD_VERSION: already built"
fi

# --- kwok (plays the kubelets of fake nodes). go install works: its module has no replace directives.
KWOK_LDFLAGS="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
if ! is_built kwok "$KWOK_VERSION" "$KWOK_LDFLAGS"; then
  log "kwok $KWOK_VERSION: building"
  (cd "$WORK" && GOBIN="$BIN" go install -trimpath -ldflags "$KWOK_LDFLAGS" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") ||
    die "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION failed"
  write_stamp kwok "$KWOK_VERSION" "$KWOK_LDFLAGS"
  log "kwok: done"
else
  log "kwok $KWOK_VERSION: already built"
fi

# --- kwok's stages: node initialisation, node heartbeat with a Lease (without it a fake node goes
# NotReady after ~40 s), and fast pod ready/complete/delete.
stages="$ROOT/kwok-stages.yaml"
STAGE_FILES="node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml"
stages_stamp="kwok-stages $KWOK_VERSION $STAGE_FILES"
if [ "$force" = 1 ] || [ ! -s "$stages" ] || [ "$(cat "$ROOT/.kwok-stages.stamp" 2>/dev/null)" != "$stages_stamp" ]; then
  src="$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  if [ ! -d "$src" ]; then
    (cd "$WORK" && go mod download "sigs.k8s.io/kwok@$KWOK_VERSION") || die "cannot download the kwok module source"
  fi
  [ -d "$src" ] || die "kwok stage directory not found: $src"
  files=()
  for f in $STAGE_FILES; do files+=("$src/$f"); done
  tmp="$stages.tmp"
  : >"$tmp"
  for f in "${files[@]}"; do
    [ -f "$f" ] || die "kwok stage file missing: $f"
    printf -- '---\n# from sigs.k8s.io/kwok@%s/kustomize/stage/%s\n' "$KWOK_VERSION" "${f#"$src"/}" >>"$tmp"
    sed '/^---[[:space:]]*$/d' "$f" >>"$tmp"
  done
  mv "$tmp" "$stages"
  echo "$stages_stamp" >"$ROOT/.kwok-stages.stamp"
  built=1
  log "kwok stages: $stages (${#files[@]} files)"
fi

if [ "$built" = 0 ]; then
  log "up to date: $BIN"
  exit 0
fi
log "all binaries in $BIN:"
ls -l "$BIN" | sed 's/^/  /'
elapsed=$(($(date +%s) - start))
# du of the Go build cache takes ~20 s, so only after a build.
log "built in $elapsed s; disk: $(du -sh "$ROOT" 2>/dev/null | cut -f1) in $ROOT, $(du -sh "$GOCACHE" 2>/dev/null | cut -f1) Go build cache ($GOCACHE), $(du -sh "$GOMODCACHE" 2>/dev/null | cut -f1) Go module cache ($GOMODCACHE)"
