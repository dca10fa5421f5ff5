"""The Python model artifacts: an outer plain pickle (readable by any Python 3)
holding metadata and the model, so a runner can check the Python version
before loading the model itself.

Two formats: a cloudpickled closure (deployers.python), and a framework
model (deployers.sklearn, .xgboost, .onnx, .pytorch): a manifest naming the
framework, its options and its files, each file the model saved in that
framework's own format, loaded by clipper_runtime.loaders. Both record the
packages the model needs as "name==version", so an environment can be built
from either alike."""

from __future__ import annotations

import logging
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

log = logging.getLogger("clipper_runtime")

ARTIFACT_FORMAT = "clipper-python-closure/1"
FRAMEWORK_ARTIFACT_FORMAT = "clipper-python-framework/1"
# Protocol 4 is readable by every Python from 3.4 on.
_OUTER_PROTOCOL = 4


def current_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class ArtifactMetadata:
    python_version: str | None
    packages: list[str] = field(default_factory=list)
    # The framework of a framework artifact ("sklearn", "onnx", ...); None for a closure.
    framework: str | None = None

    def model_description(self) -> str:
        return f"the {self.framework} model" if self.framework else "the closure"


def dump_artifact(closure: Any, packages: list[str] | None = None) -> bytes:
    """Serializes a closure (cloudpickle, by the caller's pickle-by-value
    registrations) with the running Python version and its packages."""
    return pickle.dumps(
        {
            "format": ARTIFACT_FORMAT,
            "python_version": current_python_version(),
            "packages": list(packages or []),
            "closure": cloudpickle.dumps(closure),
        },
        protocol=_OUTER_PROTOCOL,
    )


def dump_framework_artifact(
    framework: str, files: dict[str, bytes], options: dict[str, str], packages: list[str]
) -> bytes:
    """A framework artifact: the files the framework saved (name -> bytes), the
    loader's options (plain strings) and the packages, with this Python version."""
    return pickle.dumps(
        {
            "format": FRAMEWORK_ARTIFACT_FORMAT,
            "python_version": current_python_version(),
            "packages": list(packages),
            "framework": framework,
            "options": dict(options),
            "files": dict(files),
        },
        protocol=_OUTER_PROTOCOL,
    )


def read_artifact(data: bytes) -> tuple[ArtifactMetadata, Callable[[], Any]]:
    """The artifact's metadata, and a function that unpickles the closure
    itself, or loads a framework model (which imports the modules it needs,
    so it is what fails in an environment without them). A plain
    cloudpickled object (no metadata) is accepted too. Warns when the
    artifact was made by another Python version: loading it may fail."""
    try:
        outer = pickle.loads(data)
    except ModuleNotFoundError:
        # Not this format (whose outer pickle holds only plain values): a plain cloudpickled object needing a module.
        return ArtifactMetadata(python_version=None), lambda: pickle.loads(data)
    known = isinstance(outer, dict) and outer.get("format") in (ARTIFACT_FORMAT, FRAMEWORK_ARTIFACT_FORMAT)
    if not known:
        return ArtifactMetadata(python_version=None), lambda: outer
    framework = outer.get("framework") if outer["format"] == FRAMEWORK_ARTIFACT_FORMAT else None
    metadata = ArtifactMetadata(
        python_version=outer.get("python_version"), packages=list(outer.get("packages", [])), framework=framework
    )
    running = current_python_version()
    if metadata.python_version != running:
        log.warning(
            "%s was %s by Python %s but this runner is Python %s; loading or running it may fail",
            metadata.model_description(),
            "saved" if framework else "pickled",
            metadata.python_version,
            running,
        )
    if framework is not None:
        from .loaders import load_model

        return metadata, lambda: load_model(framework, outer.get("files", {}), outer.get("options", {}))
    closure = outer["closure"]
    return metadata, lambda: cloudpickle.loads(closure)


def load_artifact(data: bytes) -> tuple[Any, ArtifactMetadata]:
    """Returns the closure and its metadata (read_artifact, then its closure)."""
    metadata, load = read_artifact(data)
    return load(), metadata
