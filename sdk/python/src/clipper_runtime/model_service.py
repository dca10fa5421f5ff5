"""The clipper.model.v1.ModelService handlers around a user's predict function."""

from __future__ import annotations

import logging
import platform
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc

from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc

from .inputs import InvalidInputs, unpack_inputs
from .observability import PredictObserver

log = logging.getLogger("clipper_runtime")

PredictFn = Callable[[list], Sequence[str]]

# Batches open at once on one PredictStream with concurrency > 1; the router
# keeps a few per replica, so more is a misbehaving caller.
MAX_OPEN_BATCHES = 1024


def resolve_predict(model: Any) -> PredictFn:
    """A model is a predict function or an object with a `.predict` method."""
    predict = getattr(model, "predict", None)
    if callable(predict):
        return predict
    if callable(model):
        return model
    raise TypeError(
        f"model must be a function predict(inputs) -> list[str] or have a .predict method, got {type(model).__name__}"
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


def _batch_failure(batch_id: int, code: grpc.StatusCode, message: str) -> model_service_pb2.PredictStreamResponse:
    return model_service_pb2.PredictStreamResponse(batch_id=batch_id, error_code=code.value[0], error_message=message)


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
        self._concurrency = concurrency
        # The open PredictStreams and their batches in flight, for drain(): a router keeps its stream
        # open, so without ending the idle ones a stop would wait its whole grace for nothing.
        self._streams_lock = threading.Lock()
        self._streams: dict[Any, _OpenStream] = {}
        self._draining = False

    def drain(self) -> None:
        """Ends every PredictStream once its batches in flight are answered: an
        idle one at once (cancelled: it has nothing to lose), a busy one after
        its last answer. New batches are refused by the server's stop."""
        with self._streams_lock:
            self._draining = True
            idle = [stream for stream in self._streams.values() if stream.batches == 0]
            busy = [stream for stream in self._streams.values() if stream.batches > 0]
        for stream in idle:
            stream.end()
        for stream in busy:
            stream.ending = True

    def _open_stream(self, context, end: Callable[[], None]) -> _OpenStream:
        stream = _OpenStream(end)
        with self._streams_lock:
            self._streams[context] = stream
            if self._draining:
                stream.ending = True
        return stream

    def _close_stream(self, context) -> None:
        with self._streams_lock:
            self._streams.pop(context, None)

    def _batch_started(self, stream: _OpenStream) -> None:
        with self._streams_lock:
            stream.batches += 1

    def _batch_answered(self, stream: _OpenStream) -> bool:
        """Whether the stream should end now: draining, and nothing left in flight."""
        with self._streams_lock:
            stream.batches -= 1
            return (stream.ending or self._draining) and stream.batches == 0

    def Predict(self, request, context):
        carrier = lambda: {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}  # noqa: E731
        response = model_service_pb2.PredictResponse()
        invalid = self._predict_batch(request.inputs, request.batch_id, carrier, response.outputs)
        if invalid is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid)
        return response

    def PredictStream(self, request_iterator, context):
        """Answers each batch on the stream by its batch_id. With one model
        slot the batches run one after the other in this handler's thread (no
        hand-off between threads); with more, each runs on the stream's own
        pool and is answered when done, in any order."""
        if self._concurrency != 1:
            yield from self._concurrent_answers(request_iterator, context)
            return
        stream = self._open_stream(context, context.cancel)
        try:
            for request in request_iterator:
                self._batch_started(stream)
                answer = self._stream_answer(request)
                last = self._batch_answered(stream)
                yield answer
                if last:
                    return
        finally:
            self._close_stream(context)

    def _stream_answer(self, request) -> model_service_pb2.PredictStreamResponse:
        carrier = lambda: {"traceparent": request.traceparent, "tracestate": request.tracestate}  # noqa: E731
        response = model_service_pb2.PredictStreamResponse(batch_id=request.batch_id)
        try:
            invalid = self._predict_batch(request.inputs, request.batch_id, carrier, response.outputs)
        except Exception as error:  # what a unary call would answer as UNKNOWN
            log.exception("batch %d failed", request.batch_id)
            return _batch_failure(request.batch_id, grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")
        if invalid is not None:
            return _batch_failure(request.batch_id, grpc.StatusCode.INVALID_ARGUMENT, invalid)
        return response

    def _concurrent_answers(self, request_iterator, context):
        answers: queue.Queue = queue.Queue()
        done = object()
        pool = futures.ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="predict-stream")

        def read() -> None:
            pending = []
            try:
                for request in request_iterator:
                    pending = [f for f in pending if not f.done()]
                    if len(pending) >= MAX_OPEN_BATCHES:
                        answers.put(
                            _batch_failure(
                                request.batch_id,
                                grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"{MAX_OPEN_BATCHES} batches are open on this stream, its limit",
                            )
                        )
                        continue
                    self._batch_started(stream)
                    pending.append(pool.submit(run_batch, request))
            except grpc.RpcError:
                pass  # the caller went away; nothing more to read
            finally:
                futures.wait(pending)
                answers.put(done)

        stream = self._open_stream(context, lambda: answers.put(done))

        # The answer is queued inside the task, not by a done-callback: a
        # future counts as done before its callbacks run, so the reader's
        # wait could end the stream ahead of an answer still to be queued.
        def run_batch(request) -> None:
            answers.put(self._stream_answer(request))
            if self._batch_answered(stream):
                answers.put(done)

        reader = threading.Thread(target=read, name="predict-stream-reader", daemon=True)
        reader.start()
        try:
            while context.is_active():
                answer = answers.get()
                if answer is done:
                    return
                yield answer
        finally:
            self._close_stream(context)
            pool.shutdown(wait=False, cancel_futures=True)

    def _predict_batch(self, inputs, batch_id: int, carrier, outputs) -> str | None:
        """Runs one batch, appending one Output per input to `outputs` (a
        response's repeated field, filled in place). Returns why the inputs
        are invalid, or None."""
        batch_size = len(inputs.lengths) or len(inputs.bytes) or len(inputs.strings)
        with self._observer.predict(carrier, batch_size, batch_id) as record:
            try:
                batch = unpack_inputs(inputs, self._input_type)
            except InvalidInputs as error:
                record.outcome = "invalid_input"
                return str(error)
            if not batch:
                return None
            with self._slots:
                try:
                    result = self._predict(batch)
                except (Exception, SystemExit) as error:  # a model bug answers errors, never kills us
                    log.exception("predict failed for batch %d of %d inputs", batch_id, len(batch))
                    record.outcome = "model_error"
                    record.output_errors = len(batch)
                    _all_errors(outputs, f"model raised {type(error).__name__}: {error}", len(batch))
                    return None
            record.output_errors, first_error = fill_outputs(outputs, result, len(batch))
            if first_error is not None:
                log.warning("batch %d: %s", batch_id, first_error)
            return None

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


class _OpenStream:
    """One PredictStream as drain() sees it: its batches in flight, and how to end it."""

    __slots__ = ("batches", "end", "ending")

    def __init__(self, end: Callable[[], None]) -> None:
        self.batches = 0
        self.end = end
        self.ending = False
