"""Clipper model runtime: serve a Python predict function as a model container."""

from .artifact import dump_artifact, load_artifact
from .input_types import input_type_name, parse_input_type
from .inputs import pack_inputs, unpack_inputs
from .server import ModelServer, serve

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
