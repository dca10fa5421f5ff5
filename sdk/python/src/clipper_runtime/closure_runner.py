"""Serves a Python model artifact (clipper_runtime.artifact: a cloudpickled
closure, or a framework model loaded by clipper_runtime.loaders):
`python -m clipper_runtime.closure_runner`.

Environment: CLIPPER_ARTIFACT (path of the artifact, required),
CLIPPER_MODEL_PORT, CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION,
CLIPPER_INPUT_TYPE (doubles|floats|ints|bytes|strings), CLIPPER_MODEL_HOST.

Exit status: 0 after SIGTERM, 2 for a configuration error, 3
(EXIT_ENVIRONMENT) when this interpreter cannot load the runtime or the
model (the last line on stderr names the missing module), 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import sys

# Standard library only: the runtime's own dependencies are checked before anything imports them.
from .environment import EXIT_ENVIRONMENT, closure_load_problem, runtime_problem

log = logging.getLogger("clipper_runtime.closure_runner")


def main() -> int:
    problem = runtime_problem()
    if problem is not None:
        print(f"closure_runner: {problem}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    from ._runner_config import (
        RunnerConfigError,
        configure_logging,
        input_type_from_env,
        port_from_env,
        serve_until_stopped,
    )
    from .artifact import read_artifact

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
            data = artifact.read()
    except OSError as error:
        print(f"closure_runner: cannot read the closure artifact {artifact_path}: {error}", file=sys.stderr)
        return 1
    try:
        metadata, load_closure = read_artifact(data)
    except Exception:
        log.exception("cannot load the closure artifact %s", artifact_path)
        return 1
    try:
        model = load_closure()
    except Exception as error:
        described = metadata.model_description()
        log.error("cannot load %s from %s", described, artifact_path, exc_info=True)
        # The last line of the replica's log, which a failed deploy quotes.
        print(f"closure_runner: {closure_load_problem(error, metadata.packages, described)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    if metadata.packages:
        log.info("%s recorded packages: %s", metadata.model_description(), ", ".join(metadata.packages))
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
