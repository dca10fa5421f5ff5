"""KServe's own Python SDK (`kserve` on PyPI) against the gateway's Open Inference Protocol endpoint:
InferenceRESTClient with the v2 protocol and InferenceGRPCClient, as a KServe user's code calls a
predictor. Run by test_e2e_oip.py in a venv of its own (kserve pins protobuf < 7; the SDK's venv has 7):

    python kserve_client_check.py HOST:PORT

Prints what each client got as one JSON object; exits non-zero on any failure."""

from __future__ import annotations

import asyncio
import json
import sys

from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


def request(model: str, rows: list[list[float]], version: str | None = None) -> InferRequest:
    """The rows as one FP64 tensor, its data flattened in row-major order (as kserve's gRPC conversion takes it)."""
    flat = [float(v) for row in rows for v in row]
    tensor = InferInput(name="input", shape=[len(rows), len(rows[0])], datatype="FP64", data=flat)
    return InferRequest(model_name=model, infer_inputs=[tensor], model_version=version)


def outputs(response) -> dict[str, list]:
    """Each output tensor's values by name: numbers as floats, BOOL as booleans."""
    return {o.name: [v if isinstance(v, bool) else float(v) for v in o.as_numpy().tolist()] for o in response.outputs}


async def main(address: str) -> dict:
    got: dict = {}
    base = f"http://{address}"
    rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        got["rest_live"] = await rest.is_server_live(base)
        got["rest_ready"] = await rest.is_server_ready(base)
        got["rest_model_ready"] = await rest.is_model_ready(base, "sum")
        answer = await rest.infer(base, request("sum", [[1, 2], [3, 4]]), model_name="sum")
        got["rest_infer"] = {"model": answer.model_name, "outputs": outputs(answer)}
        try:
            await rest.infer(base, request("no-such-model", [[1]]), model_name="no-such-model")
            got["rest_unknown"] = "answered"
        except Exception as error:  # httpx.HTTPStatusError, naming the status
            got["rest_unknown"] = getattr(getattr(error, "response", None), "status_code", repr(error))
    finally:
        await rest.close()
    grpc_client = InferenceGRPCClient(address, timeout=30)
    try:
        got["grpc_live"] = await grpc_client.is_server_live()
        got["grpc_ready"] = await grpc_client.is_server_ready()
        got["grpc_model_ready"] = await grpc_client.is_model_ready("sum")
        answer = await grpc_client.infer(request("sum", [[1.5, 2.5]], version="1"))
        got["grpc_infer"] = {"model": answer.model_name, "version": answer.model_version, "outputs": outputs(answer)}
    finally:
        await grpc_client.close()
    return got


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
