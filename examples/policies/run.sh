#!/usr/bin/env bash
# Runs the selection-policy example end to end: starts Clipper (clipper up), deploys two
# scikit-learn classifiers, streams digits with feedback through six policies, stops Clipper,
# and writes examples/policies/policies.png and policies.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
"$PYTHON" -c "import matplotlib, sklearn" 2>/dev/null || {
  echo "needs scikit-learn and matplotlib in $PYTHON: $PYTHON -m pip install scikit-learn matplotlib" >&2
  exit 1
}
PYTHONPATH="$PWD/sdk/python/src${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" examples/policies/run.py
