"""MLServer custom runtimes for the benchmark's no-op and fixed-cost models: each
calls the very predict() Clipper's containers call (bench/models/), on the
rows of the request's first tensor, and answers FP64 `output`."""

import fixed_cost
import noop
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class _RowsModel(MLModel):
    _predict = None

    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0])
        answers = np.asarray(type(self)._predict(list(rows)), dtype=np.float64)
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("output", answers)]
        )


class NoopModel(_RowsModel):
    _predict = staticmethod(noop.predict)


class FixedCostModel(_RowsModel):
    # Blocks its worker for the model's cost, as fixed_cost.py blocks Clipper's container.
    _predict = staticmethod(fixed_cost.predict)
