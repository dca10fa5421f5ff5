#!/usr/bin/env bash
# One command from a clean clone: installs what it needs, starts the whole system
# on the embedded default (no Redis, no Kubernetes), deploys the example model to
# the application "hello-world" and prints where to send predictions.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/@bufbuild/protobuf ]; then
  echo "Installing npm packages..."
  npm install --no-audit --no-fund --loglevel=error
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import grpc, cloudpickle, numpy" 2>/dev/null; then
  echo "Creating the Python environment for model containers (.venv)..."
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r sdk/python/requirements-dev.txt
fi
clipper() { node cli/clipper.mjs "$@"; }
clipper up
clipper app create hello-world --input-type doubles --default-output -1.0 --slo-micros 100000 2>/dev/null \
  || echo "(application hello-world already exists)"
clipper model deploy sum-model --version 1 --input-type doubles --python examples/sum_model.py:predict \
  || echo "(model sum-model:1 already deployed)"
clipper link hello-world sum-model 2>/dev/null || true
cat <<'TXT'

Clipper is serving hello-world. Try:
  curl -X POST -H 'Content-Type: application/json' -d '{"input": [1.1, 2.2, 3.3]}' localhost:1337/hello-world/predict
Status: node cli/clipper.mjs status      Stop: node cli/clipper.mjs down
TXT
