#!/usr/bin/env bash
# Regenerates gen/ (TypeScript), sdk/python/src/clipper/ (Python) and the TypeScript model
# SDK's own sdk/typescript/src/gen/ (sdk/typescript/buf.gen.yaml) from proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen sdk/python/src/clipper sdk/typescript/src/gen
export PATH="$PWD/node_modules/.bin:$PATH"
buf generate
buf generate --template sdk/typescript/buf.gen.yaml
