"""The clipper.model.v1.ModelService handlers around a user's predict function."""

from __future__ import annotations

import logging
import platform
import threading
from typing import Any, Callable, Sequence

import grpc

from clipper.common.v1 import data_pb2
from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc

from .inputs import InvalidInputs, unpack_inputs
from .observability import PredictObserver

log = logging.getLogger("clipper_runtime")

PredictFn = Callable[[list], Sequence[str]]


def resolve_predict(model: Any) -> PredictFn:
    """A model is a predict function or an object with a `.predict` method."""
    predict = getattr(model, "predict", None)
    if callable(predict):
        return predict
    if callable(model):
        return model
    raise TypeError(
        f"model must be a function predict(inputs) -> list[str] or have a .predict method, "
        f"got {type(model).__name__}"
    )


def fill_outputs(outputs: Any, result: Any, expected: int) -> tuple[int, str | None]:
    """Appends one Output per input to `outputs` (a PredictResponse's repeated
    field, filled in place: no Output objects to build and copy). A result of
    the wrong shape makes every input an error; a non-string element makes
    that input an error. Returns the number of errors and the first one."""
    if isinstance(result, (str, bytes)) or result is None or not hasattr(result, "__iter__"):
        message = f"model returned {type(result).__name__}, expected a list of {expected} strings"
        return _all_errors(outputs, message, expected)
    if not hasattr(result, "__len__"):
        result = list(result)
    if len(result) != expected:
        return _all_errors(outputs, f"model returned {len(result)} outputs for {expected} inputs", expected)
    add = outputs.add
    errors = 0
    first_error = None
    for index, value in enumerate(result):
        if isinstance(value, str):
            add(value=value)
            continue
        message = f"output {index} is {type(value).__name__}, expected str"
        add(error=message)
        errors += 1
        first_error = first_error or message
    return errors, first_error


def _all_errors(outputs: Any, message: str, expected: int) -> tuple[int, str]:
    for _ in range(expected):
        outputs.add(error=message)
    return expected, message


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(
        self,
        predict: PredictFn,
        name: str,
        version: str,
        input_type: int,
        concurrency: int = 1,
        observer: PredictObserver | None = None,
    ) -> None:
        self._predict = predict
        self._observer = observer or PredictObserver(name, version)
        self._name = name
        self._version = version
        self._input_type = input_type
        # Clipper's containers ran one batch at a time; models need not be thread-safe.
        self._slots = threading.BoundedSemaphore(concurrency)

    def Predict(self, request, context):
        batch_size = len(request.inputs.lengths) or len(request.inputs.bytes) or len(request.inputs.strings)
        with self._observer.predict(context, batch_size, request.batch_id) as record:
            try:
                batch = unpack_inputs(request.inputs, self._input_type)
            except InvalidInputs as error:
                record.outcome = "invalid_input"
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            if not batch:
                return model_service_pb2.PredictResponse()
            with self._slots:
                try:
                    result = self._predict(batch)
                except (Exception, SystemExit) as error:  # a model bug answers errors, never kills us
                    log.exception("predict failed for batch %d of %d inputs", request.batch_id, len(batch))
                    record.outcome = "model_error"
                    record.output_errors = len(batch)
                    message = f"model raised {type(error).__name__}: {error}"
                    return model_service_pb2.PredictResponse(
                        outputs=[data_pb2.Output(error=message) for _ in batch]
                    )
            response = model_service_pb2.PredictResponse()
            record.output_errors, first_error = fill_outputs(response.outputs, result, len(batch))
            if first_error is not None:
                log.warning("batch %d: %s", request.batch_id, first_error)
            return response

    def GetMetadata(self, request, context):
        return model_service_pb2.GetMetadataResponse(
            model_name=self._name,
            model_version=self._version,
            input_type=self._input_type,
            runtime=f"python {platform.python_version()}",
            max_batch_size=0,
        )

    def CheckReadiness(self, request, context):
        return model_service_pb2.CheckReadinessResponse(ready=True)
