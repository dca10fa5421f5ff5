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
# Runs a clipper command, tolerating only what a re-run can meet: the application or model version
# already there with another definition (the same one succeeds: creating it again changes nothing).
# Anything else (the registry down, a bad flag) is printed and stops the script.
unless_it_exists() {
  local err status
  err=$(mktemp)
  "$@" 2>"$err" && { rm -f "$err"; return 0; }
  status=$?
  cat "$err" >&2
  if grep -q -e "already exists with a different definition" -e "is already registered with a different runtime" "$err"; then
    rm -f "$err"
    echo "(keeping what is there: the message above says how it differs from this script's)"
    return 0
  fi
  rm -f "$err"
  echo "quickstart.sh: stopped: \`clipper $2 $3 ...\` failed (exit status $status)" >&2
  exit "$status"
}
clipper up
unless_it_exists clipper app create hello-world --input-type doubles --default-output -1.0 --slo-micros 100000
unless_it_exists clipper model deploy sum-model --version 1 --input-type doubles --python examples/sum_model.py:predict
clipper link hello-world sum-model
cat <<'TXT'

Clipper is serving hello-world. Try:
  curl -X POST -H 'Content-Type: application/json' -d '{"input": [1.1, 2.2, 3.3]}' localhost:1337/hello-world/predict
Status: node cli/clipper.mjs status      Stop: node cli/clipper.mjs down
TXT
