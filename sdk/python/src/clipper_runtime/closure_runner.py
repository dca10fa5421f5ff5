"""Serves a cloudpickled closure: `python -m clipper_runtime.closure_runner`.

Environment: CLIPPER_ARTIFACT (path of the artifact, required),
CLIPPER_MODEL_PORT, CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION,
CLIPPER_INPUT_TYPE (doubles|floats|ints|bytes|strings), CLIPPER_MODEL_HOST.
"""

from __future__ import annotations

import logging
import os
import sys

from ._runner_config import (
    RunnerConfigError,
    configure_logging,
    input_type_from_env,
    port_from_env,
    serve_until_stopped,
)
from .artifact import load_artifact

log = logging.getLogger("clipper_runtime.closure_runner")


def main() -> int:
    configure_logging()
    try:
        artifact_path = os.environ.get("CLIPPER_ARTIFACT")
        if not artifact_path:
            raise RunnerConfigError("CLIPPER_ARTIFACT is not set: it must name the closure artifact file")
        port = port_from_env()
        input_type = input_type_from_env()
    except RunnerConfigError as error:
        print(f"closure_runner: {error}", file=sys.stderr)
        return 2
    try:
        with open(artifact_path, "rb") as artifact:
            model, metadata = load_artifact(artifact.read())
    except Exception:
        log.exception("cannot load the closure artifact %s", artifact_path)
        return 1
    if metadata.packages:
        log.info("closure recorded packages: %s", ", ".join(metadata.packages))
    return serve_until_stopped(
        "closure_runner",
        model,
        name=os.environ.get("CLIPPER_MODEL_NAME", "model"),
        version=os.environ.get("CLIPPER_MODEL_VERSION", "1"),
        input_type=input_type,
        port=port,
    )


if __name__ == "__main__":
    sys.exit(main())
