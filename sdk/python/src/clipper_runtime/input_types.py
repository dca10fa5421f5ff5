"""Clipper's input type names and the proto enum they stand for."""

from __future__ import annotations

from clipper.common.v1 import data_pb2

InputType = int  # a clipper.common.v1.InputType enum value

_BY_NAME: dict[str, int] = {
    "bytes": data_pb2.INPUT_TYPE_BYTES,
    "ints": data_pb2.INPUT_TYPE_INTS,
    "integers": data_pb2.INPUT_TYPE_INTS,
    "floats": data_pb2.INPUT_TYPE_FLOATS,
    "doubles": data_pb2.INPUT_TYPE_DOUBLES,
    "strings": data_pb2.INPUT_TYPE_STRINGS,
}

_NAMES: dict[int, str] = {
    data_pb2.INPUT_TYPE_BYTES: "bytes",
    data_pb2.INPUT_TYPE_INTS: "ints",
    data_pb2.INPUT_TYPE_FLOATS: "floats",
    data_pb2.INPUT_TYPE_DOUBLES: "doubles",
    data_pb2.INPUT_TYPE_STRINGS: "strings",
}

VALID_NAMES = ("bytes", "ints", "floats", "doubles", "strings")


def parse_input_type(value: str | int) -> int:
    """Accepts Clipper's names ("doubles", ...), the proto names
    ("INPUT_TYPE_DOUBLES") or the enum value; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid input type {value!r}")
    if isinstance(value, int):
        if value in _NAMES:
            return value
        raise ValueError(f"invalid input type {value!r}: expected one of {', '.join(VALID_NAMES)}")
    if isinstance(value, str):
        key = value.strip().lower()
        if key.startswith("input_type_"):
            key = key[len("input_type_") :]
        if key in _BY_NAME:
            return _BY_NAME[key]
    raise ValueError(f"invalid input type {value!r}: expected one of {', '.join(VALID_NAMES)}")


def input_type_name(value: int) -> str:
    """Clipper's name of an enum value ("doubles"), or the raw number if unknown."""
    return _NAMES.get(value, str(value))
