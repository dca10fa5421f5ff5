#!/usr/bin/env bash
# Regenerates gen/ (TypeScript), sdk/python/src/clipper/ (Python) and the TypeScript model
# SDK's own sdk/typescript/src/gen/ (sdk/typescript/buf.gen.yaml) from proto/, and copies the .proto
# files the R package reads at load time (RProtoBuf parses them; R has no code generator here).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen sdk/python/src/clipper sdk/typescript/src/gen sdk/r/clippermodel/inst/proto
export PATH="$PWD/node_modules/.bin:$PATH"
buf generate
buf generate --template sdk/typescript/buf.gen.yaml
for f in clipper/common/v1/data.proto clipper/model/v1/model_service.proto grpc/health/v1/health.proto; do
  mkdir -p "sdk/r/clippermodel/inst/proto/$(dirname "$f")"
  cp "proto/$f" "sdk/r/clippermodel/inst/proto/$f"
done
