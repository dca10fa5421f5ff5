"""Unpacking a packed `clipper.common.v1.Inputs` batch into what a model's
predict function receives, as Clipper's Python containers did: numeric inputs
as numpy arrays, strings as str, bytes as bytes."""

from __future__ import annotations

from typing import Any

import numpy as np

from clipper.common.v1 import data_pb2

from .input_types import input_type_name


class InvalidInputs(ValueError):
    """The batch is malformed or of the wrong type; answered as INVALID_ARGUMENT."""


_NUMERIC: dict[int, tuple[str, Any]] = {
    data_pb2.INPUT_TYPE_DOUBLES: ("doubles", np.float64),
    data_pb2.INPUT_TYPE_FLOATS: ("floats", np.float32),
    data_pb2.INPUT_TYPE_INTS: ("ints", np.int32),
}


def unpack_inputs(inputs: data_pb2.Inputs, expected_type: int) -> list[Any]:
    """Returns one element per input. Numeric inputs are views into one array
    made from the packed field (no per-element Python work)."""
    if inputs.type != expected_type:
        raise InvalidInputs(
            f"inputs.type is {input_type_name(inputs.type)}, this model takes {input_type_name(expected_type)}"
        )
    numeric = _NUMERIC.get(expected_type)
    if numeric is not None:
        field, dtype = numeric
        # np.array reads upb's repeated scalar container in C.
        values = np.array(getattr(inputs, field), dtype=dtype)
        lengths = np.array(inputs.lengths, dtype=np.int64)
        total = int(lengths.sum())
        if total != values.size:
            raise InvalidInputs(f"inputs.lengths sum to {total} but inputs.{field} has {values.size} values")
        if lengths.size == 0:
            return []
        first = int(lengths[0])
        if first > 0 and (lengths == first).all():
            # The usual case (every input the same length): one reshape, rows made in C.
            return list(values.reshape(lengths.size, first))
        return np.split(values, np.cumsum(lengths[:-1]))
    if expected_type == data_pb2.INPUT_TYPE_STRINGS:
        return list(inputs.strings)
    if expected_type == data_pb2.INPUT_TYPE_BYTES:
        return list(inputs.bytes)
    raise InvalidInputs(f"unsupported input type {input_type_name(expected_type)}")


def pack_inputs(values: list[Any], input_type: int) -> data_pb2.Inputs:
    """The inverse of unpack_inputs; used by tests and clients."""
    numeric = _NUMERIC.get(input_type)
    if numeric is not None:
        field, dtype = numeric
        arrays = [np.asarray(v, dtype=dtype).ravel() for v in values]
        packed = np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)
        inputs = data_pb2.Inputs(type=input_type, lengths=[a.size for a in arrays])
        getattr(inputs, field).extend(packed.tolist())
        return inputs
    if input_type == data_pb2.INPUT_TYPE_STRINGS:
        return data_pb2.Inputs(type=input_type, strings=values)
    if input_type == data_pb2.INPUT_TYPE_BYTES:
        return data_pb2.Inputs(type=input_type, bytes=values)
    raise ValueError(f"unsupported input type {input_type_name(input_type)}")
