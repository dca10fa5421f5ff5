#!/usr/bin/env bash
# Regenerates gen/ (TypeScript) and sdk/python/src/clipper/ (Python) from proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen sdk/python/src/clipper
PATH="$PWD/node_modules/.bin:$PATH" buf generate
