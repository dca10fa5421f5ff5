"""ONNX: a model (`model.onnx`, from any framework that exports ONNX) run by
onnxruntime on the CPU. The batch is the model's first input, as the input
type it declares; the answer is the output named in the manifest (default:
the model's first output), one value or row per input."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime

from . import format_outputs, model_file, stack_rows

MODEL_FILE = "model.onnx"
# onnxruntime's names of the tensor element types a Clipper input can become.
TENSOR_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(string)": np.str_,
}


class OnnxModel:
    def __init__(self, session: onnxruntime.InferenceSession, output: str) -> None:
        self._session = session
        model_input = session.get_inputs()[0]
        self._input_name = model_input.name
        self._dtype = TENSOR_TYPES[model_input.type]
        self._output = output

    def predict(self, inputs: list[Any]) -> list[str]:
        if self._dtype is np.str_:
            batch = np.array(inputs, dtype=object).reshape(len(inputs), 1)
        else:
            batch = stack_rows(inputs, self._dtype)
        (result,) = self._session.run([self._output], {self._input_name: batch})
        return format_outputs(result, len(inputs))


def open_session(data: bytes) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])


def check_model(session: onnxruntime.InferenceSession, output: str | None) -> str:
    """The output the model answers with (`output`, or the first one); a model
    whose first input is no tensor of a type above, or an unknown output name,
    is a ValueError saying what it has."""
    model_input = session.get_inputs()[0]
    if model_input.type not in TENSOR_TYPES:
        raise ValueError(
            f"the model's first input {model_input.name!r} is a {model_input.type}; "
            f"a Clipper model's input must be one of {', '.join(TENSOR_TYPES)}"
        )
    names = [o.name for o in session.get_outputs()]
    chosen = output or names[0]
    if chosen not in names:
        raise ValueError(f"the model has no output {chosen!r}; its outputs are {', '.join(names)}")
    return chosen


def load(files: dict[str, bytes], options: dict[str, str]) -> OnnxModel:
    session = open_session(model_file(files, MODEL_FILE))
    return OnnxModel(session, check_model(session, options.get("output") or None))
