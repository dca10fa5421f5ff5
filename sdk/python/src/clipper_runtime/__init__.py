"""Clipper model runtime: serve a Python predict function as a model container.

The names below are imported on first use, so that `python -m
clipper_runtime.closure_runner` can check the runtime's dependencies
(clipper_runtime.environment) before anything imports grpc or protobuf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .artifact import dump_artifact, load_artifact
    from .input_types import input_type_name, parse_input_type
    from .inputs import pack_inputs, unpack_inputs
    from .server import ModelServer, serve

_EXPORTS = {
    "ModelServer": ".server",
    "serve": ".server",
    "dump_artifact": ".artifact",
    "load_artifact": ".artifact",
    "parse_input_type": ".input_types",
    "input_type_name": ".input_types",
    "pack_inputs": ".inputs",
    "unpack_inputs": ".inputs",
}

__all__ = [
    "ModelServer",
    "serve",
    "dump_artifact",
    "load_artifact",
    "parse_input_type",
    "input_type_name",
    "pack_inputs",
    "unpack_inputs",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
