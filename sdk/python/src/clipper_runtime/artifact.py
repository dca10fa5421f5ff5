"""The Python closure artifact: an outer plain pickle (readable by any Python 3)
holding metadata and the cloudpickled closure, so a runner can check the
Python version before unpickling the closure itself."""

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
# Protocol 4 is readable by every Python from 3.4 on.
_OUTER_PROTOCOL = 4


def current_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class ArtifactMetadata:
    python_version: str | None
    packages: list[str] = field(default_factory=list)


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


def read_artifact(data: bytes) -> tuple[ArtifactMetadata, Callable[[], Any]]:
    """The artifact's metadata, and a function that unpickles the closure
    itself (which imports the modules it needs, so it is what fails in an
    environment without them). A plain cloudpickled object (no metadata) is
    accepted too. Warns when the artifact was made by another Python version:
    unpickling code across versions may fail."""
    try:
        outer = pickle.loads(data)
    except ModuleNotFoundError:
        # Not this format (whose outer pickle holds only plain values): a plain cloudpickled object needing a module.
        return ArtifactMetadata(python_version=None), lambda: pickle.loads(data)
    if not (isinstance(outer, dict) and outer.get("format") == ARTIFACT_FORMAT):
        return ArtifactMetadata(python_version=None), lambda: outer
    metadata = ArtifactMetadata(python_version=outer.get("python_version"), packages=list(outer.get("packages", [])))
    running = current_python_version()
    if metadata.python_version != running:
        log.warning(
            "the closure was pickled by Python %s but this runner is Python %s; loading or running it may fail",
            metadata.python_version,
            running,
        )
    closure = outer["closure"]
    return metadata, lambda: cloudpickle.loads(closure)


def load_artifact(data: bytes) -> tuple[Any, ArtifactMetadata]:
    """Returns the closure and its metadata (read_artifact, then its closure)."""
    metadata, load = read_artifact(data)
    return load(), metadata
