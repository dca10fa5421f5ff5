"""Whether this interpreter can run a model container: the runtime's own
dependencies, and the modules a closure needs. Standard library only, so it
can speak when those dependencies are missing.

The container-manager runs a closure with the interpreter that deployed it
(a venv, a conda env, a notebook kernel: where the closure's packages are),
and puts this checkout's runtime first on PYTHONPATH. That interpreter had
clipper_admin, so it normally has the runtime's dependencies too; when it
does not (or when it is the container-manager's own default interpreter),
the runner says what is missing and how to fix it, and exits with
EXIT_ENVIRONMENT instead of a bare ImportError traceback.
"""

from __future__ import annotations

import importlib
import sys

# The runner's exit status when this interpreter cannot load the runtime or
# the closure (2 is a configuration error, 1 any other failure).
EXIT_ENVIRONMENT = 3

# What the runtime imports, and the requirement (sdk/python/pyproject.toml's
# dependencies) that provides it. A test keeps the two lists equal.
RUNTIME_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("grpc", "grpcio>=1.85.1"),
    ("grpc_health.v1.health", "grpcio-health-checking>=1.85.1"),
    ("google.protobuf", "protobuf>=7.36.2"),
    ("cloudpickle", "cloudpickle>=3.0"),
    ("numpy", "numpy>=1.24"),
)
# Generated from proto/; importing it checks that the protobuf runtime is new enough for the generated code.
_STUBS = "clipper.model.v1.model_service_pb2"


def interpreter_description() -> str:
    return f"{sys.executable or 'python'} (Python {sys.version_info.major}.{sys.version_info.minor})"


def _install_hint(requirements: list[str]) -> str:
    quoted = " ".join(f"'{r}'" for r in requirements)
    return (
        f"install them into that environment ({sys.executable or 'python'} -m pip install {quoted}, "
        "or install the Clipper SDK there), or deploy from an environment that has the SDK installed"
    )


def runtime_problem() -> str | None:
    """Why this interpreter cannot run the Clipper model runtime, or None when it can."""
    missing: list[str] = []
    details: list[str] = []
    for module, requirement in RUNTIME_REQUIREMENTS:
        try:
            importlib.import_module(module)
        except ImportError as error:
            missing.append(requirement)
            details.append(f"{module}: {error}")
    if missing:
        return (
            f"the interpreter {interpreter_description()} lacks the Clipper model runtime's dependencies "
            f"({'; '.join(details)}): {_install_hint(missing)}"
        )
    try:
        importlib.import_module(_STUBS)
    except Exception as error:  # protobuf's VersionError, or an ImportError from a broken install
        return (
            f"the interpreter {interpreter_description()} cannot load the runtime's generated protobuf code "
            f"({type(error).__name__}: {error}): {_install_hint([r for m, r in RUNTIME_REQUIREMENTS if m != 'numpy'])}"
        )
    return None


def closure_load_problem(error: BaseException, packages: list[str], model: str = "the closure") -> str:
    """One line on why a model (a closure, or a framework model: `model` says
    which) could not be loaded here, naming the missing module and what to do."""
    recorded = f"; {model} records the packages {', '.join(packages)}" if packages else ""
    if isinstance(error, ModuleNotFoundError) and error.name:
        return (
            f"cannot load {model}: it needs the module '{error.name}', which the interpreter "
            f"{interpreter_description()} cannot import{recorded}. Run the model where that module is installed: "
            "deploy it from the environment it was written in (replicas run with the deploying interpreter when "
            "that exists on the container-manager's machine), or install the module into this interpreter"
        )
    return (
        f"cannot load {model} with the interpreter {interpreter_description()}: "
        f"{type(error).__name__}: {error}{recorded}. A model loads where the packages it was saved with "
        "are installed, at versions that can read it"
    )
