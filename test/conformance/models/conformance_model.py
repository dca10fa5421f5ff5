"""The conformance kit's model for the Python runtime (the contract: test/conformance/README.md).

    PYTHONPATH=sdk/python/src python -m clipper_runtime.file_runner test/conformance/models/conformance_model.py predict

Each input is answered with a JSON object: numeric inputs {"n": count, "sum": sum}, strings
{"n": UTF-8 bytes, "echo": text}, bytes {"n": count, "sum": sum of the unsigned bytes}. Directives
(a string or bytes "!fail", "!wrong-count", "!wrong-type", "!sleep:MS"; a numeric input
[-999, code, ms] with code 1, 2, 3, 4) make the batch raise, answer one output too few, answer a
non-string for that input, or sleep. CLIPPER_CONFORMANCE_LOAD_MS makes loading slow.
"""

from __future__ import annotations

import json
import os
import sys
import time

MAGIC = -999
_CODES = {1: "fail", 2: "wrong-count", 3: "wrong-type", 4: "sleep"}


def _load() -> None:
    load_ms = int(os.environ.get("CLIPPER_CONFORMANCE_LOAD_MS", "0") or "0")
    print(f"conformance-model: loading {load_ms} ms", file=sys.stderr, flush=True)
    time.sleep(load_ms / 1000)
    print("conformance-model: loaded", file=sys.stderr, flush=True)


_load()


def _directive(x):
    """("fail",), ("sleep", ms), ...; or None when the input is data."""
    if isinstance(x, (str, bytes)):
        text = x if isinstance(x, str) else x.decode("utf-8", errors="replace")
        if not text.startswith("!"):
            return None
        if text.startswith("!sleep:"):
            return ("sleep", int(text[7:]))
        return (text[1:],)
    if len(x) >= 2 and float(x[0]) == MAGIC:
        kind = _CODES.get(int(x[1]))
        if kind == "sleep":
            return ("sleep", int(x[2]) if len(x) > 2 else 0)
        return (kind,) if kind else None
    return None


def _answer(x) -> str:
    if isinstance(x, str):
        return json.dumps({"n": len(x.encode("utf-8")), "echo": x})
    if isinstance(x, bytes):
        return json.dumps({"n": len(x), "sum": sum(x)})
    # numpy arrays: ints summed as integers, floats and doubles in double precision.
    if x.dtype.kind in "iu":
        return json.dumps({"n": int(x.size), "sum": int(x.sum(dtype="int64"))})
    return json.dumps({"n": int(x.size), "sum": float(x.sum(dtype="float64"))})


def predict(inputs):
    outputs = []
    sleep_ms = 0
    fail = wrong_count = False
    for x in inputs:
        d = _directive(x)
        if d is None:
            outputs.append(_answer(x))
        elif d[0] == "fail":
            fail = True
            outputs.append("{}")
        elif d[0] == "wrong-count":
            wrong_count = True
            outputs.append("{}")
        elif d[0] == "wrong-type":
            outputs.append(None)
        elif d[0] == "sleep":
            sleep_ms = max(sleep_ms, d[1])
            outputs.append(json.dumps({"slept": d[1]}))
        else:
            outputs.append(_answer(x))
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    if fail:
        raise RuntimeError("conformance model: asked to fail")
    if wrong_count:
        outputs.pop()
    return outputs
