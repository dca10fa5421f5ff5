"""Serves a function from a Python file: `python -m clipper_runtime.file_runner FILE FUNC`.

Port, name, version and input type come from flags or, when not given, from
CLIPPER_MODEL_PORT, CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION and
CLIPPER_INPUT_TYPE. Exit status as closure_runner's (3: this interpreter
cannot load the runtime or the file's imports).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType

# Standard library only: the runtime's own dependencies are checked before anything imports them.
from .environment import EXIT_ENVIRONMENT, interpreter_description, runtime_problem

log = logging.getLogger("clipper_runtime.file_runner")


def load_module(path: Path) -> ModuleType:
    module_name = path.stem.replace("-", "_") or "clipper_model"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    # Sibling modules of the file must be importable, as when running it directly.
    sys.path.insert(0, str(path.parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipper_runtime.file_runner")
    parser.add_argument("file", help="the Python file defining the model")
    parser.add_argument("func", help="the predict function (or model object) in that file")
    parser.add_argument("--port", type=int, help="default: $CLIPPER_MODEL_PORT or 7000")
    parser.add_argument("--name", help="default: $CLIPPER_MODEL_NAME")
    parser.add_argument("--version", help="default: $CLIPPER_MODEL_VERSION")
    parser.add_argument("--input-type", help="doubles|floats|ints|bytes|strings; default: $CLIPPER_INPUT_TYPE")
    args = parser.parse_args(argv)
    problem = runtime_problem()
    if problem is not None:
        print(f"file_runner: {problem}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    from ._runner_config import (
        RunnerConfigError,
        configure_logging,
        input_type_from_env,
        port_from_env,
        serve_until_stopped,
    )
    from .input_types import parse_input_type

    configure_logging()
    try:
        port = args.port if args.port is not None else port_from_env()
        input_type = parse_input_type(args.input_type) if args.input_type else input_type_from_env()
    except (RunnerConfigError, ValueError) as error:
        print(f"file_runner: {error}", file=sys.stderr)
        return 2
    path = Path(args.file).resolve()
    if not path.is_file():
        print(f"file_runner: {args.file} is not a file", file=sys.stderr)
        return 2
    try:
        module = load_module(path)
    except ModuleNotFoundError as error:
        log.exception("cannot load %s", path)
        print(
            f"file_runner: cannot load {path}: it needs the module '{error.name or error}', which the interpreter "
            f"{interpreter_description()} cannot import; install it there, or run the model with a Python that has it",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
    except Exception:
        log.exception("cannot load %s", path)
        return 1
    model = getattr(module, args.func, None)
    if model is None:
        print(f"file_runner: {args.file} defines no {args.func!r}", file=sys.stderr)
        return 2
    return serve_until_stopped(
        "file_runner",
        model,
        name=args.name or os.environ.get("CLIPPER_MODEL_NAME", path.stem),
        version=args.version or os.environ.get("CLIPPER_MODEL_VERSION", "1"),
        input_type=input_type,
        port=port,
    )


if __name__ == "__main__":
    sys.exit(main())
