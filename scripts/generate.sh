#!/usr/bin/env bash
# Regenerates gen/ (TypeScript), sdk/python/src/clipper/ (Python) and the TypeScript model
# SDK's own sdk/typescript/src/gen/ (sdk/typescript/buf.gen.yaml) from proto/, and copies the .proto
# files the R package reads at load time (RProtoBuf parses them; R has no code generator here).
# Everything is generated into a temporary directory first and then swapped in by rename, so code
# that runs meanwhile (tests, services) never sees a half-empty gen/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
out=$(mktemp -d "$PWD/.generate.XXXXXX")
trap 'rm -rf "$out"' EXIT
buf generate -o "$out"
buf generate --template sdk/typescript/buf.gen.yaml -o "$out"
for f in clipper/common/v1/data.proto clipper/model/v1/model_service.proto grpc/health/v1/health.proto; do
  mkdir -p "$out/sdk/r/clippermodel/inst/proto/$(dirname "$f")"
  cp "proto/$f" "$out/sdk/r/clippermodel/inst/proto/$f"
done
for dir in gen sdk/python/src/clipper sdk/typescript/src/gen sdk/r/clippermodel/inst/proto; do
  [ -d "$out/$dir" ] || { echo "generate.sh: buf generated no $dir" >&2; exit 1; }
  if [ -e "$dir" ]; then mv "$dir" "$out/$dir.stale"; fi
  mv "$out/$dir" "$dir"
done
