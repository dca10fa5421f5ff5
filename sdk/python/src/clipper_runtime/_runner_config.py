"""Settings shared by the runners, from the environment the container-manager sets."""

from __future__ import annotations

import logging
import os
import sys

from .input_types import parse_input_type


class RunnerConfigError(ValueError):
    pass


def serve_until_stopped(runner: str, model, *, name: str, version: str, input_type: int, port: int) -> int:
    """Serves until SIGTERM/SIGINT; a bind or model-shape problem is one line on stderr and exit status 1."""
    from .server import serve

    try:
        serve(model, name=name, version=version, input_type=input_type, port=port)
    except (OSError, TypeError) as error:
        print(f"{runner}: {error}", file=sys.stderr)
        return 1
    return 0


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CLIPPER_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def port_from_env(default: int = 7000) -> int:
    raw = os.environ.get("CLIPPER_MODEL_PORT")
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise RunnerConfigError(f"CLIPPER_MODEL_PORT must be a port number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise RunnerConfigError(f"CLIPPER_MODEL_PORT must be in 0..65535, got {port}")
    return port


def input_type_from_env(default: str = "doubles") -> int:
    raw = os.environ.get("CLIPPER_INPUT_TYPE", default)
    try:
        return parse_input_type(raw)
    except ValueError as error:
        raise RunnerConfigError(f"CLIPPER_INPUT_TYPE: {error}") from None
