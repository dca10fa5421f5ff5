"""Clipper admin client: deploy and manage models and applications."""

from .connection import ClipperConnection
from .container_manager import ContainerManager, LocalContainerManager
from .docker_container_manager import DockerContainerManager
from .exceptions import ClipperException
from .kubernetes_container_manager import KubernetesContainerManager

__all__ = [
    "ClipperConnection",
    "ContainerManager",
    "LocalContainerManager",
    "DockerContainerManager",
    "KubernetesContainerManager",
    "ClipperException",
]
