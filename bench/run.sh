#!/usr/bin/env bash
# The benchmark in one command. Creates bench/.venv (Ray Serve, scikit-learn,
# matplotlib) on first use, then runs bench/run.ts with the given flags.
#   bench/run.sh [--quick] [--no-ray] [--only REGEX] [--duration S] [--warmup S]
#   bench/run.sh --at REV [flags]   measures commit REV (a clean `git archive` export, with this bench/)
#   bench/run.sh --mlserver [--mlserver-workers N] --triton [--rounds N]   adds the peers (bench/peers.ts),
#     installed on first use into bench/.venv-peers (about 210 MB downloaded, 690 MB on disk), driven by
#     wrk (REST) and .tools/bin/ghz (gRPC); --peer-loadgen node drives them with our Node clients instead.
#     With CLIPPER_PERF_ANALYZER (and _LIBS) set as .ci/run sets them, perf_analyzer runs against ours and Triton.
set -euo pipefail
bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"

if [[ ! -x "$bench_dir/.venv/bin/python" ]]; then
  python3 -m venv "$bench_dir/.venv"
  "$bench_dir/.venv/bin/pip" install --quiet "ray[serve]" scikit-learn matplotlib numpy
fi
# The peers' versions as measured; uvloop 0.22 breaks MLServer 1.7.1's parallel workers
# ("There is no current event loop", SeldonIO/MLServer#2286).
peer_packages=("mlserver==1.7.1" "mlserver-sklearn==1.7.1" "nvidia-pytriton==0.7.0" "uvloop<0.22" scikit-learn numpy)
peers_venv="$bench_dir/.venv-peers"
for arg in "$@"; do
  if [[ "$arg" == "--mlserver" || "$arg" == "--triton" ]] && [[ ! -f "$peers_venv/.installed" ]]; then
    rm -rf "$peers_venv"
    python3 -m venv "$peers_venv"
    echo '*' >"$peers_venv/.gitignore"
    wheels="$(mktemp -d)"
    started=$SECONDS
    "$peers_venv/bin/pip" download --quiet --dest "$wheels" "${peer_packages[@]}"
    downloaded=$SECONDS
    "$peers_venv/bin/pip" install --quiet --no-index --find-links "$wheels" "${peer_packages[@]}"
    echo "bench: peers installed: $(du -sm "$wheels" | cut -f1) MB downloaded in $((downloaded - started)) s, installed in $((SECONDS - downloaded)) s, $(du -sm "$peers_venv" | cut -f1) MB on disk" >&2
    rm -rf "$wheels"
    touch "$peers_venv/.installed"
    break
  fi
done
if [[ ! -x "$repo/.venv/bin/python" ]]; then
  echo "bench: $repo/.venv (the model runtime's venv: grpcio, grpcio-health-checking, numpy, scikit-learn) is missing" >&2
  exit 2
fi

if [[ "${1:-}" == "--at" ]]; then
  rev="${2:?--at needs a revision}"
  shift 2
  commit="$(git -C "$repo" rev-parse --short "$rev")"
  # Outside the repository, so that tsc and vitest of the working tree never see the export.
  tree="${TMPDIR:-/tmp}/clipper-bench-tree-$commit"
  rm -rf "$tree"
  mkdir -p "$tree"
  git -C "$repo" archive "$commit" | tar -x -C "$tree"
  rm -rf "$tree/bench"
  mkdir -p "$tree/bench"
  (cd "$bench_dir" && tar -c --exclude=./out --exclude=./.venv --exclude=./.venv-peers .) | tar -x -C "$tree/bench"
  ln -s "$repo/node_modules" "$tree/node_modules"
  ln -s "$repo/.venv" "$tree/.venv"
  ln -s "$bench_dir/.venv" "$tree/bench/.venv"
  if [[ -d "$peers_venv" ]]; then ln -s "$peers_venv" "$tree/bench/.venv-peers"; fi
  cd "$tree"
  BENCH_COMMIT="$commit" BENCH_COMMAND="bench/run.sh --at $rev $*" node --import tsx bench/run.ts --out "$bench_dir/out" "$@"
else
  cd "$repo"
  BENCH_COMMAND="bench/run.sh $*" node --import tsx bench/run.ts "$@"
fi
