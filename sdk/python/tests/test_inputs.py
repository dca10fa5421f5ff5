"""unpack_inputs / pack_inputs: one element per input, whatever the lengths."""

import pytest

from clipper.common.v1 import data_pb2
from clipper_runtime.inputs import InvalidInputs, pack_inputs, unpack_inputs

DOUBLES = data_pb2.INPUT_TYPE_DOUBLES


def test_equal_lengths_come_back_as_rows_of_one_array():
    values = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    out = unpack_inputs(pack_inputs(values, DOUBLES), DOUBLES)
    assert isinstance(out, list)
    assert [row.tolist() for row in out] == values
    # Views of one array, not copies.
    assert out[0].base is not None and out[0].base is out[1].base


@pytest.mark.parametrize(
    "values",
    [[[1.0], [2.0, 3.0], [4.0, 5.0, 6.0]], [[], []], [[1.0, 2.0], []], [[7.0]]],
)
def test_ragged_and_empty_inputs(values):
    out = unpack_inputs(pack_inputs(values, DOUBLES), DOUBLES)
    assert [row.tolist() for row in out] == values


def test_no_inputs():
    assert unpack_inputs(data_pb2.Inputs(type=DOUBLES), DOUBLES) == []


def test_lengths_that_do_not_match_the_values_are_refused():
    inputs = data_pb2.Inputs(type=DOUBLES, lengths=[2, 2], doubles=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputs, match="sum to 4 but inputs.doubles has 3 values"):
        unpack_inputs(inputs, DOUBLES)
